// JNI glue between org.tfcompress.flowers.TfcompressOpsDelegate and libtfcompress_ops.so.
//
// The op library exports the external-delegate plugin entry points
// (tflite_plugin_create_delegate / tflite_plugin_destroy_delegate). The delegate they create
// claims the CUSTOM nodes with a tfcompress custom_name and runs them with the library's
// kernels; Java passes its address to Interpreter.Options.addDelegate through
// Delegate.getNativeHandle(). Only pointers cross this file, so no TFLite header is needed.
#include <jni.h>

#include <cstddef>
#include <string>

struct TfLiteDelegate;

extern "C" {
TfLiteDelegate* tflite_plugin_create_delegate(char** options_keys, char** options_values, size_t num_options,
                                              void (*report_error)(const char*));
void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate);
const char* tfc_default_kernel();
}

#if defined(__ANDROID__)
#include <android/log.h>
static void ReportError(const char* message) { __android_log_print(ANDROID_LOG_ERROR, "tfcompress", "%s", message); }
#else
#include <cstdio>
static void ReportError(const char* message) { std::fprintf(stderr, "tfcompress: %s\n", message); }
#endif

extern "C" JNIEXPORT jlong JNICALL Java_org_tfcompress_flowers_TfcompressOpsDelegate_nativeCreate(JNIEnv*, jclass,
                                                                                                 jint num_threads) {
  std::string key = "num_threads";
  std::string value = std::to_string(num_threads > 0 ? num_threads : 1);
  char* keys[] = {key.data()};
  char* values[] = {value.data()};
  return reinterpret_cast<jlong>(tflite_plugin_create_delegate(keys, values, 1, ReportError));
}

extern "C" JNIEXPORT void JNICALL Java_org_tfcompress_flowers_TfcompressOpsDelegate_nativeDestroy(JNIEnv*, jclass,
                                                                                                 jlong handle) {
  tflite_plugin_destroy_delegate(reinterpret_cast<TfLiteDelegate*>(handle));
}

extern "C" JNIEXPORT jstring JNICALL Java_org_tfcompress_flowers_TfcompressOpsDelegate_nativeKernel(JNIEnv* env,
                                                                                                   jclass) {
  return env->NewStringUTF(tfc_default_kernel());
}
