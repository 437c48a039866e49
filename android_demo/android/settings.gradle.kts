// The tfcompress flower demo for Android: CameraX frames -> LiteRT Interpreter, with the
// tfcompress custom ops registered through a delegate from the JNI library (app/src/main/cpp).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "tfcompress-flowers"
include(":app")
