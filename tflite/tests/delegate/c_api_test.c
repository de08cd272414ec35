/* The public header compiles as C99 and the C API works from C (ctest). */
#include <stdio.h>
#include <string.h>

#include "sbnn_delegate.h"

int main(void) {
  SbnnDelegateOptions o = sbnn_delegate_options_default();
  struct TfLiteDelegate* d;
  char buf[512];
  o.runtime_version = "2.16.2";
  o.num_threads = 2;
  d = sbnn_delegate_create(&o);
  if (d == NULL) {
    printf("create failed: %s\n", sbnn_delegate_last_error());
    return 1;
  }
  sbnn_delegate_describe(d, buf, sizeof buf);
  if (strstr(buf, "num_threads=2") == NULL) return 1;
  sbnn_delegate_delete(d);
  o.runtime_version = "2.17.0";
  if (sbnn_delegate_create(&o) != NULL) return 1;
  if (strstr(sbnn_delegate_last_error(), "2.17.0") == NULL) return 1;
  if (!sbnn_delegate_kernel_known("reference") || sbnn_delegate_kernel_known("nope")) return 1;
  printf("c_api_test: ok (%s)\n", sbnn_delegate_version());
  return 0;
}
