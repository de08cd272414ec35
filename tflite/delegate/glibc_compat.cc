// glibc floor of libsbnn_delegate.so (docs/deployment.md, "glibc floor").
//
// The library links libstdc++ statically (a device may have an older libstdc++.so or
// none), so the libstdc++.a of the build machine decides which glibc symbols it imports.
// Built on glibc >= 2.34, those objects bind to symbol versions no older system has:
//   - pthread_create, pthread_once, pthread_key_* ... moved from libpthread to libc in
//     glibc 2.34 and got a new default version GLIBC_2.34 there; the old versions
//     (GLIBC_2.2.5 on x86_64, GLIBC_2.17 on aarch64) are still exported by every glibc;
//   - __libc_single_threaded (GLIBC_2.32), read by libstdc++'s reference counting.
// Rules, so that the library loads on glibc 2.17 (aarch64) / 2.2.5 (x86_64) and later:
//   - every reference to the pthread functions above is redirected at link time
//     (-Wl,--wrap=NAME, tflite/CMakeLists.txt) to a __wrap_NAME below that calls the
//     oldest version of NAME (.symver), which has the same ABI on every glibc;
//   - the library defines its own, hidden __libc_single_threaded = 0 ("the process may
//     have threads"): libstdc++ then always takes its atomic path, which is correct in
//     any process (glibc's variable is only an optimisation hint);
//   - libstdc++'s std::random_device (arc4random, GLIBC_2.36) is not linked: the delegate
//     never uses it and --gc-sections drops the sections that would;
//   - libgcc's unwinder comes from the system's libgcc_s.so.1 (present wherever glibc
//     is), not from libgcc_eh.a, whose copy calls _dl_find_object (GLIBC_2.35).
// tests/test_native_abi.py checks the result: no imported glibc version above 2.28.
// Not built for Android (bionic has its own symbols and no versions) nor for the
// sanitizer builds (they link the system's shared libstdc++).
#include <pthread.h>

#if defined(__x86_64__)
#define SBNN_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define SBNN_GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc_compat.cc: add the base glibc symbol version of this architecture"
#endif

// Declares sbnn_glibc_NAME as the oldest version of NAME and defines __wrap_NAME.
#define SBNN_OLD_SYMBOL(name) __asm__(".symver sbnn_glibc_" #name ", " #name "@" SBNN_GLIBC_BASE)

extern "C" {

__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;

int sbnn_glibc_pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
int sbnn_glibc_pthread_detach(pthread_t);
int sbnn_glibc_pthread_join(pthread_t, void**);
int sbnn_glibc_pthread_key_create(pthread_key_t*, void (*)(void*));
int sbnn_glibc___pthread_key_create(pthread_key_t*, void (*)(void*));
int sbnn_glibc_pthread_key_delete(pthread_key_t);
void* sbnn_glibc_pthread_getspecific(pthread_key_t);
int sbnn_glibc_pthread_setspecific(pthread_key_t, const void*);
int sbnn_glibc_pthread_once(pthread_once_t*, void (*)(void));
SBNN_OLD_SYMBOL(pthread_create);
SBNN_OLD_SYMBOL(pthread_detach);
SBNN_OLD_SYMBOL(pthread_join);
SBNN_OLD_SYMBOL(pthread_key_create);
SBNN_OLD_SYMBOL(__pthread_key_create);
SBNN_OLD_SYMBOL(pthread_key_delete);
SBNN_OLD_SYMBOL(pthread_getspecific);
SBNN_OLD_SYMBOL(pthread_setspecific);
SBNN_OLD_SYMBOL(pthread_once);

#define SBNN_HIDDEN __attribute__((visibility("hidden")))

SBNN_HIDDEN int __wrap_pthread_create(pthread_t* t, const pthread_attr_t* a,
                                      void* (*fn)(void*), void* arg) {
  return sbnn_glibc_pthread_create(t, a, fn, arg);
}
SBNN_HIDDEN int __wrap_pthread_detach(pthread_t t) { return sbnn_glibc_pthread_detach(t); }
SBNN_HIDDEN int __wrap_pthread_join(pthread_t t, void** r) { return sbnn_glibc_pthread_join(t, r); }
SBNN_HIDDEN int __wrap_pthread_key_create(pthread_key_t* k, void (*d)(void*)) {
  return sbnn_glibc_pthread_key_create(k, d);
}
SBNN_HIDDEN int __wrap___pthread_key_create(pthread_key_t* k, void (*d)(void*)) {
  return sbnn_glibc___pthread_key_create(k, d);
}
SBNN_HIDDEN int __wrap_pthread_key_delete(pthread_key_t k) { return sbnn_glibc_pthread_key_delete(k); }
SBNN_HIDDEN void* __wrap_pthread_getspecific(pthread_key_t k) {
  return sbnn_glibc_pthread_getspecific(k);
}
SBNN_HIDDEN int __wrap_pthread_setspecific(pthread_key_t k, const void* v) {
  return sbnn_glibc_pthread_setspecific(k, v);
}
SBNN_HIDDEN int __wrap_pthread_once(pthread_once_t* o, void (*f)(void)) {
  return sbnn_glibc_pthread_once(o, f);
}

}  // extern "C"
