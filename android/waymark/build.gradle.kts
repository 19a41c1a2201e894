// The Waymark Android library module.
//
// Sources:
// - build/generated/uniffi/kotlin: the uniffi bindings (package uniffi.waymark), generated at
//   build time from libwaymark_ffi.so by the workspace's uniffi-bindgen; never committed.
// - src/main/kotlin: platform-neutral helpers (Flow of changes, sync progress), also compiled
//   and tested on the JVM by android/jvm.
// - src/android/kotlin: Android-only helpers (WorkManager sync worker, Keystore key).
// - src/main/jniLibs/<abi>/libwaymark_ffi.so: built by ../scripts/build-native.sh (cargo-ndk);
//   not committed.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repoRoot = rootProject.projectDir.parentFile
val generatedKotlin = layout.buildDirectory.dir("generated/uniffi/kotlin")
// Any ABI's library carries the same uniffi metadata; bindgen reads it without running it.
val metadataLibrary = file("src/main/jniLibs/arm64-v8a/libwaymark_ffi.so")

val generateUniffiKotlin by tasks.registering(Exec::class) {
    description = "Generates the Kotlin bindings from libwaymark_ffi.so (run scripts/build-native.sh first)."
    inputs.file(metadataLibrary)
    outputs.dir(generatedKotlin)
    workingDir = repoRoot
    commandLine(
        "cargo", "run", "--quiet", "-p", "uniffi-bindgen", "--",
        "generate", "--library", metadataLibrary.absolutePath,
        "--language", "kotlin", "--no-format",
        "--out-dir", generatedKotlin.get().asFile.absolutePath,
    )
    doFirst {
        check(metadataLibrary.exists()) { "missing $metadataLibrary: run android/scripts/build-native.sh" }
    }
}

android {
    namespace = "org.waymark"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
    }

    sourceSets["main"].apply {
        kotlin.srcDir(generatedKotlin)
        kotlin.srcDir("src/android/kotlin")
        jniLibs.srcDir("src/main/jniLibs")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

tasks.named("preBuild") { dependsOn(generateUniffiKotlin) }

dependencies {
    // The generated bindings call the library through JNA; the AAR carries JNA's own .so files.
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("androidx.work:work-runtime-ktx:2.10.0")
}
