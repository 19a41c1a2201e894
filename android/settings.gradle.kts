// Gradle build of the Waymark Android library (an AAR with the generated Kotlin bindings, the
// hand-written coroutine/WorkManager/Keystore helpers, and libwaymark_ffi.so per ABI).
// Not built on Waymark's CI machines (no Android SDK there); see README.md.
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

rootProject.name = "waymark-android"
include(":waymark")
