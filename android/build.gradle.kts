plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

android {
    namespace = "org.phonesignin.android"
    compileSdk = 35

    defaultConfig {
        // setUserAuthenticationParameters and BiometricPrompt with device credential + CryptoObject.
        minSdk = 30
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            // Platform-free layer (compiled with kotlinc -Werror by `cargo xtask kotlin-test`),
            // the uniffi-generated bindings (written by `cargo xtask bindings`) and the Android adapters.
            kotlin.srcDirs("src/common/kotlin", "src/generated/kotlin", "src/main/kotlin")
            // libauthenticator_core.so per ABI, built with cargo-ndk (docs/EMBEDDING.md).
            jniLibs.srcDirs("src/main/jniLibs")
        }
        getByName("test") {
            kotlin.srcDirs("src/test/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
    compilerOptions {
        allWarningsAsErrors.set(true)
    }
}

dependencies {
    // uniffi's Kotlin bindings load the Rust library through JNA (the AAR ships libjnidispatch).
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("androidx.biometric:biometric:1.1.0")
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.fragment:fragment-ktx:1.8.5")
    implementation("com.google.firebase:firebase-messaging:24.1.0")
    // UnifiedPush connector: Web Push subscriptions and RFC 8291 decryption on the phone.
    implementation("org.unifiedpush.android:connector:3.0.0")

    // JVM tests (run here by `cargo xtask kotlin-test` against the host's cdylib and a real server).
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.jetbrains.kotlin:kotlin-test-junit:2.1.0")
    testImplementation("net.java.dev.jna:jna:5.14.0")
}
