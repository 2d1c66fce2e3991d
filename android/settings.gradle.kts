// Android library module of phone sign-in. Open this folder in Android Studio, or include it from
// an app's settings.gradle.kts. Before building: `cargo xtask bindings` (generated Kotlin into
// src/generated/kotlin) and the native libraries (see docs/EMBEDDING.md, "Android").
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "phonesignin-android"
