package org.tfcompress.flowers

import org.tensorflow.lite.Delegate

/**
 * The tfcompress custom ops (TfcBinaryConv2D, TfcBinaryDense, the PQ ops, ...) for the stock
 * LiteRT Interpreter.
 *
 * The Java Interpreter.Options has no addCustomOp, so the ops come in as a delegate: the
 * native library (libtfcompress_ops.so, built from converters/) claims the CUSTOM nodes whose
 * custom_name is one of its ops and runs them with its kernels (NEON on arm64-v8a); XNNPACK
 * and the builtin kernels keep every other node. A model without our ops is left untouched.
 * The handle comes from tflite_plugin_create_delegate through libtfcompress_jni.so.
 */
class TfcompressOpsDelegate(numThreads: Int) : Delegate, AutoCloseable {
    private var handle: Long = nativeCreate(numThreads)

    init {
        check(handle != 0L) { "libtfcompress_ops could not create its delegate" }
    }

    override fun getNativeHandle(): Long = handle

    override fun close() {
        if (handle != 0L) {
            nativeDestroy(handle)
            handle = 0L
        }
    }

    companion object {
        init {
            System.loadLibrary("tfcompress_jni")
        }

        /** The binary-conv kernel the library picked on this CPU ("neon", "scalar", ...). */
        val kernel: String get() = nativeKernel()

        @JvmStatic private external fun nativeCreate(numThreads: Int): Long

        @JvmStatic private external fun nativeDestroy(handle: Long)

        @JvmStatic private external fun nativeKernel(): String
    }
}
