// The app module. The model and labels are copied from the repository's models/ folder into
// the APK's assets at build time (task copyFlowerModel); the native library is built by CMake
// from app/src/main/cpp, which pulls in ../converters (the same sources as the Python wheel).
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

val repoRoot = rootProject.projectDir.resolve("../..").canonicalFile
// Which shipped model goes into the APK: -PflowerModel=flowers_binary.tflite to change it.
val flowerModel = (project.findProperty("flowerModel") as String?) ?: "flowers_effnet_lite0_int8.tflite"
val generatedAssets = layout.buildDirectory.dir("generated/flowerAssets")

android {
    namespace = "org.tfcompress.flowers"
    compileSdk = 34
    ndkVersion = "26.3.11579264"

    defaultConfig {
        applicationId = "org.tfcompress.flowers"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "MODEL_ASSET", "\"$flowerModel\"")
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a")
        }
        externalNativeBuild {
            cmake {
                // TFLite C headers: set TFLITE_INCLUDE_DIR / FLATBUFFERS_INCLUDE_DIR in the
                // environment, or let converters/ run fetch_tflite_headers.sh (Debian/Ubuntu hosts).
                arguments += listOf("-DANDROID_STL=c++_shared", "-DTFCOMPRESS_REPO=${repoRoot.path}")
            }
        }
    }

    buildFeatures {
        buildConfig = true
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    androidResources {
        noCompress += "tflite" // memory-mapped by the Interpreter
    }

    sourceSets["main"].assets.srcDir(generatedAssets)
}

val copyFlowerModel by tasks.registering(Copy::class) {
    description = "Copies models/$flowerModel and models/labels.txt into the APK assets."
    from(repoRoot.resolve("models")) {
        include(flowerModel, "labels.txt")
    }
    into(generatedAssets)
    doFirst {
        require(repoRoot.resolve("models/$flowerModel").isFile) {
            "models/$flowerModel not found: build the flower models first (see models/*.md)"
        }
    }
}
tasks.named("preBuild") { dependsOn(copyFlowerModel) }

dependencies {
    // LiteRT (the former TensorFlow Lite), Interpreter API: org.tensorflow.lite.Interpreter.
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    val camerax = "1.3.4"
    implementation("androidx.camera:camera-core:$camerax")
    implementation("androidx.camera:camera-camera2:$camerax")
    implementation("androidx.camera:camera-lifecycle:$camerax")
    implementation("androidx.camera:camera-view:$camerax")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.core:core-ktx:1.13.1")
}
