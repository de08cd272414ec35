/* sbnn_delegate: runs LCE's binary ops (LceQuantize, LceDequantize, LceBconv2d,
 * LceBMaxPool2d) and the project's SbnnBconv2d (LceBconv2d with its filter stored
 * in SBF1 form) inside a stock TensorFlow Lite / LiteRT interpreter.
 *
 * Two ways in:
 *   1. As an external delegate plugin (Python: sbnn_keras.runtime.load_delegate,
 *      or tf.lite.experimental.load_delegate(path, options)): the runtime calls
 *      tflite_plugin_create_delegate with string options.
 *   2. From a native app that links TFLite (C++ or the C API): fill an
 *      SbnnDelegateOptions, call sbnn_delegate_create, and hand the result to
 *      Interpreter::ModifyGraphWithDelegate / TfLiteInterpreterOptionsAddDelegate.
 *
 * The delegate declares the TfLite structs it uses itself (no TFLite headers are
 * needed to build it), so it only runs on runtimes whose ABI was checked:
 * `runtime` / `runtime_version` must name one of them (see docs/runtime.md) and
 * creation fails otherwise. All functions are plain C and thread-safe except
 * where noted.
 */
#ifndef SBNN_DELEGATE_H_
#define SBNN_DELEGATE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SBNN_API __attribute__((visibility("default")))
#else
#define SBNN_API
#endif

struct TfLiteDelegate; /* the runtime's type; we only pass pointers */

typedef struct SbnnDelegateOptions {
  /* Threads used by each op (the calling thread counts): 1..64. */
  int num_threads;
  /* Binary conv kernel: "auto" (or NULL) picks the fastest supported one,
   * "reference" the portable reference, or a kernel name from
   * sbnn_delegate_kernels(). */
  const char* kernel;
  /* The runtime the delegate is loaded into: "tflite" (a native build of
   * TensorFlow Lite), "tensorflow" (tf.lite in the TensorFlow wheel) or
   * "ai_edge_litert", and its version, e.g. TFLITE_VERSION_STRING. */
  const char* runtime;
  const char* runtime_version;
  /* Non-zero: accept a runtime/version pair that was never tested (the ABI
   * checks still run). At your own risk. */
  int allow_untested_runtime;
} SbnnDelegateOptions;

/* Defaults: 1 thread, "auto", runtime "tflite", runtime_version NULL (must be set). */
SBNN_API SbnnDelegateOptions sbnn_delegate_options_default(void);

/* Creates a delegate, or returns NULL; sbnn_delegate_last_error() says why. */
SBNN_API struct TfLiteDelegate* sbnn_delegate_create(const SbnnDelegateOptions* options);

/* Destroys a delegate from sbnn_delegate_create (after every interpreter using it). */
SBNN_API void sbnn_delegate_delete(struct TfLiteDelegate* delegate);

/* The message of the last failed sbnn_delegate_create on this thread ("" if none). */
SBNN_API const char* sbnn_delegate_last_error(void);

/* Library version, e.g. "0.1.0". */
SBNN_API const char* sbnn_delegate_version(void);

/* Comma-separated runtime/version pairs accepted without allow_untested_runtime,
 * e.g. "tensorflow 2.16.1,tensorflow 2.16.2,...". */
SBNN_API const char* sbnn_delegate_tested_runtimes(void);

/* Comma-separated names of the binary conv kernels compiled in (supported on
 * this CPU or not); "reference" is always accepted too. */
SBNN_API const char* sbnn_delegate_kernels(void);

/* 1 if `name` is accepted as SbnnDelegateOptions.kernel: "auto", "reference", a
 * kernel name, or the start of a kernel's instruction-set part (e.g. "avx2",
 * "scalar"). Whether it supports a given shape is decided per node. */
SBNN_API int sbnn_delegate_kernel_known(const char* name);

/* Writes a one-line-per-node description of what the delegate claimed and which
 * kernel each LceBconv2d node uses into buf (NUL-terminated, truncated to size).
 * Returns the length of the full description. */
SBNN_API size_t sbnn_delegate_describe(const struct TfLiteDelegate* delegate, char* buf,
                                       size_t size);

/* External-delegate plugin interface (tensorflow/lite/delegates/external).
 * Options: num_threads, kernel, runtime, runtime_version, allow_untested_runtime.
 * num_options is declared int: TensorFlow's Python loader passes a C int. */
SBNN_API struct TfLiteDelegate* tflite_plugin_create_delegate(char** options_keys,
                                                              char** options_values,
                                                              int num_options,
                                                              void (*report_error)(const char*));
SBNN_API void tflite_plugin_destroy_delegate(struct TfLiteDelegate* delegate);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SBNN_DELEGATE_H_ */
