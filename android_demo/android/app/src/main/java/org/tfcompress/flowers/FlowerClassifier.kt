package org.tfcompress.flowers

import android.content.Context
import android.graphics.Bitmap
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import kotlin.math.exp
import kotlin.math.roundToInt

/** One class and its softmax score. */
data class Prediction(val label: String, val score: Float)

/** The top classes of one frame and the time of the interpreter call. */
data class Result(val top: List<Prediction>, val latencyMs: Double)

/**
 * A tfcompress .tflite flower model on the LiteRT Interpreter.
 *
 * Preprocessing matches tfcompress.data.load_image and the Raspberry Pi app: the whole frame
 * resized bilinearly to the model's input (128x128 for EfficientNet-Lite0, 96x96 for the ResNets), RGB, raw pixel values 0..255 (the models
 * rescale inside the graph), quantized with the input tensor's scale and zero point when the
 * model takes uint8/int8: q = clamp(round(x / scale + zero_point)). Outputs are logits;
 * scores are their softmax.
 */
class FlowerClassifier(context: Context, modelAsset: String, numThreads: Int) : AutoCloseable {
    private val opsDelegate = TfcompressOpsDelegate(numThreads)
    private val interpreter: Interpreter
    private val labels: List<String> = context.assets.open("labels.txt").bufferedReader().readLines()
        .map { it.trim() }.filter { it.isNotEmpty() }
    private val inputWidth: Int
    private val inputHeight: Int
    private val inputType: DataType
    private val inputScale: Float
    private val inputZeroPoint: Int
    private val input: ByteBuffer
    private val output: Array<FloatArray>

    init {
        val options = Interpreter.Options().setNumThreads(numThreads).addDelegate(opsDelegate)
        interpreter = Interpreter(loadAsset(context, modelAsset), options)
        val tensor = interpreter.getInputTensor(0)
        val shape = tensor.shape() // [1, H, W, 3]
        inputHeight = shape[1]
        inputWidth = shape[2]
        inputType = tensor.dataType()
        inputScale = tensor.quantizationParams().scale
        inputZeroPoint = tensor.quantizationParams().zeroPoint
        input = ByteBuffer.allocateDirect(inputWidth * inputHeight * 3 * inputType.byteSize())
            .order(ByteOrder.nativeOrder())
        val classes = interpreter.getOutputTensor(0).shape().last()
        require(interpreter.getOutputTensor(0).dataType() == DataType.FLOAT32) { "expected float logits out" }
        require(classes == labels.size) { "labels.txt has ${labels.size} names, the model $classes outputs" }
        output = arrayOf(FloatArray(classes))
    }

    /** Classifies one RGB frame (any size; it is resized here). */
    fun classify(frame: Bitmap, top: Int = 3): Result {
        fill(Bitmap.createScaledBitmap(frame, inputWidth, inputHeight, /* filter = bilinear */ true))
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        val latencyMs = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        val logits = output[0]
        val max = logits.max()
        val exps = logits.map { exp((it - max).toDouble()) }
        val sum = exps.sum()
        val ranked = exps.indices.sortedByDescending { exps[it] }.take(top)
        return Result(ranked.map { Prediction(labels[it], (exps[it] / sum).toFloat()) }, latencyMs)
    }

    private fun fill(image: Bitmap) {
        val pixels = IntArray(inputWidth * inputHeight)
        image.getPixels(pixels, 0, inputWidth, 0, 0, inputWidth, inputHeight)
        input.rewind()
        for (argb in pixels) {
            for (shift in intArrayOf(16, 8, 0)) { // R, G, B
                val value = ((argb shr shift) and 0xFF).toFloat()
                when (inputType) {
                    DataType.FLOAT32 -> input.putFloat(value)
                    DataType.UINT8 -> input.put(quantize(value, 0, 255).toByte())
                    DataType.INT8 -> input.put(quantize(value, -128, 127).toByte())
                    else -> error("unsupported input type $inputType")
                }
            }
        }
        input.rewind()
    }

    private fun quantize(value: Float, low: Int, high: Int): Int =
        (value / inputScale + inputZeroPoint).roundToInt().coerceIn(low, high)

    override fun close() {
        interpreter.close()
        opsDelegate.close() // after the interpreter that uses it
    }

    private companion object {
        fun loadAsset(context: Context, name: String): MappedByteBuffer {
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).channel.use { channel ->
                    return channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
        }
    }
}
