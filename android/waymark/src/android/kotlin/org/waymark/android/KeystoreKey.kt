// Android only: the store's 32-byte key, wrapped by a non-exportable Android Keystore key.
package org.waymark.android

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.util.AtomicFile
import java.io.File
import java.nio.ByteBuffer
import java.security.KeyStore
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/** The wrapped key exists but the Keystore key that wraps it is gone (app data restored to
 *  another device, or the Keystore was reset): the store cannot be opened on this device. */
class KeystoreKeyLostException(message: String) : Exception(message)

/**
 * Keeps the database key of a Waymark store:
 *
 * - on first use, generates 32 random bytes and an AES-256-GCM key inside Android Keystore
 *   (non-exportable: its bytes never leave the secure hardware/Keystore daemon);
 * - stores only the Keystore-encrypted bytes (IV + ciphertext + tag) in an app-private file
 *   under `noBackupFilesDir`, so neither the file nor the store key goes into cloud backups;
 * - on later uses, decrypts them with the Keystore key.
 *
 * ```
 * val key = KeystoreKey.databaseKey(context)
 * val store = try { WaymarkStore.open(path, key) } finally { key.fill(0) }
 * ```
 */
object KeystoreKey {
    private const val KEYSTORE = "AndroidKeyStore"
    private const val TRANSFORMATION = "AES/GCM/NoPadding"
    private const val TAG_BITS = 128

    /** The 32-byte key for the store named [alias], created on first call. Call off the main
     *  thread (Keystore operations can take tens of milliseconds). */
    @Synchronized
    fun databaseKey(context: Context, alias: String = "waymark-db-key"): ByteArray {
        val file = AtomicFile(File(context.noBackupFilesDir, "$alias.wrapped"))
        val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
        val wrapping = keyStore.getKey(alias, null) as SecretKey?
        if (file.baseFile.exists()) {
            wrapping ?: throw KeystoreKeyLostException("Keystore key '$alias' is missing")
            return unwrap(wrapping, file.readFully())
        }
        val key = ByteArray(32).also { SecureRandom().nextBytes(it) }
        val wrapped = wrap(wrapping ?: generate(alias), key)
        val out = file.startWrite()
        try {
            out.write(wrapped)
            file.finishWrite(out)
        } catch (e: Exception) {
            file.failWrite(out)
            throw e
        }
        return key
    }

    /** Whether a key exists under [alias]. */
    @Synchronized
    fun exists(context: Context, alias: String = "waymark-db-key"): Boolean =
        File(context.noBackupFilesDir, "$alias.wrapped").exists()

    /** Stores [key] as the key under [alias], replacing the old one in one atomic file write. */
    @Synchronized
    fun replace(context: Context, alias: String, key: ByteArray) {
        val file = AtomicFile(File(context.noBackupFilesDir, "$alias.wrapped"))
        val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
        val wrapping = keyStore.getKey(alias, null) as SecretKey? ?: generate(alias)
        val out = file.startWrite()
        try {
            out.write(wrap(wrapping, key))
            file.finishWrite(out)
        } catch (e: Exception) {
            file.failWrite(out)
            throw e
        }
    }

    /** Forgets the key (the store becomes unreadable): for "erase everything on this device". */
    @Synchronized
    fun delete(context: Context, alias: String = "waymark-db-key") {
        AtomicFile(File(context.noBackupFilesDir, "$alias.wrapped")).delete()
        KeyStore.getInstance(KEYSTORE).apply { load(null) }.deleteEntry(alias)
    }

    private fun generate(alias: String): SecretKey {
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE)
            .apply { init(spec) }
            .generateKey()
    }

    /** [iv length (1 byte)][iv][ciphertext + tag]; the Keystore picks the IV. */
    private fun wrap(wrapping: SecretKey, key: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION).apply { init(Cipher.ENCRYPT_MODE, wrapping) }
        val sealed = cipher.doFinal(key)
        val iv = cipher.iv
        return ByteBuffer.allocate(1 + iv.size + sealed.size).put(iv.size.toByte()).put(iv).put(sealed).array()
    }

    private fun unwrap(wrapping: SecretKey, blob: ByteArray): ByteArray {
        val ivLen = blob[0].toInt()
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, wrapping, GCMParameterSpec(TAG_BITS, blob, 1, ivLen))
        return cipher.doFinal(blob, 1 + ivLen, blob.size - 1 - ivLen)
    }
}

/**
 * The store key in Android Keystore as a [StoreKeyVault]: the current key under [alias], the
 * pending key of a rekey under "[alias].next".
 *
 * ```
 * val vault = KeystoreKeyVault(context)
 * val store = WaymarkKeys.open(path, vault)
 * store.rekey(vault)                 // a new key, nothing lost if the app is killed meanwhile
 * val report = store.wipe(vault)     // panic button: keys deleted, store destroyed
 * ```
 */
class KeystoreKeyVault(
    private val context: Context,
    private val alias: String = "waymark-db-key",
) : org.waymark.StoreKeyVault {
    private val next = "$alias.next"

    override fun currentKey(): ByteArray = KeystoreKey.databaseKey(context, alias)

    override fun createPendingKey(): ByteArray {
        KeystoreKey.delete(context, next)
        return KeystoreKey.databaseKey(context, next)
    }

    override fun pendingKey(): ByteArray? =
        if (KeystoreKey.exists(context, next)) KeystoreKey.databaseKey(context, next) else null

    override fun promotePendingKey() {
        val key = pendingKey() ?: return
        try {
            // Killed between these two lines, both names hold the new key: the next open
            // tries the pending one first, which works, and promotes again.
            KeystoreKey.replace(context, alias, key)
            KeystoreKey.delete(context, next)
        } finally {
            key.fill(0)
        }
    }

    override fun discardPendingKey() = KeystoreKey.delete(context, next)

    override fun deleteAll() {
        KeystoreKey.delete(context, alias)
        KeystoreKey.delete(context, next)
    }
}
