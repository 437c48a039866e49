package org.tfcompress.flowers

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** CameraX preview plus an analysis stream; each frame goes through [FlowerClassifier]. */
class MainActivity : AppCompatActivity() {
    private lateinit var analysisExecutor: ExecutorService
    private lateinit var resultView: TextView
    private var classifier: FlowerClassifier? = null

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else resultView.setText(R.string.camera_denied)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        resultView = findViewById(R.id.result)
        analysisExecutor = Executors.newSingleThreadExecutor()
        val threads = Runtime.getRuntime().availableProcessors().coerceAtMost(4)
        analysisExecutor.execute { classifier = FlowerClassifier(this, BuildConfig.MODEL_ASSET, threads) }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val preview = Preview.Builder().build().also {
                it.setSurfaceProvider(findViewById<PreviewView>(R.id.preview).surfaceProvider)
            }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { image ->
                image.use {
                    val model = classifier ?: return@use
                    val result = model.classify(it.toBitmap())
                    val text = result.top.joinToString("\n") { p -> "%-10s %.3f".format(p.label, p.score) } +
                        "\n%.1f ms  (%s kernels)".format(result.latencyMs, TfcompressOpsDelegate.kernel)
                    runOnUiThread { resultView.text = text }
                }
            }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisExecutor.execute { classifier?.close() }
        analysisExecutor.shutdown()
    }
}
