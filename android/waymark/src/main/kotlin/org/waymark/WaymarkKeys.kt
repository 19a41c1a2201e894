// The store key's life on the device: opening with it, changing it without losing data, and
// destroying it with the store (the panic button).
//
// Platform-neutral: the key's home is a [StoreKeyVault] (Android Keystore in apps, see
// KeystoreKeyVault in src/android; anything in tests), so the same source is compiled into the
// Android library and tested on the JVM (android/jvm).
package org.waymark

import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.WipeReport

/**
 * Where the store's 32-byte key lives, with room for a second, pending key while the store is
 * being re-keyed: the old key must survive until the rekey has committed, because a process
 * killed during it leaves a store that opens with either key.
 */
interface StoreKeyVault {
    /** The current key, created on first call. */
    fun currentKey(): ByteArray

    /** A fresh random key kept beside the current one until [promotePendingKey]. */
    fun createPendingKey(): ByteArray

    /** The pending key of a rekey that started and was not promoted, if any. */
    fun pendingKey(): ByteArray?

    /** Makes the pending key the current one and forgets the old one. */
    fun promotePendingKey()

    /** Forgets the pending key. */
    fun discardPendingKey()

    /** Forgets every key: what they encrypted can never be read again. */
    fun deleteAll()
}

/** Opening a store with a [StoreKeyVault]'s key. */
object WaymarkKeys {
    /**
     * Opens the store at [path] with the vault's key. If a rekey was cut short (the app was
     * killed), the pending key is tried first: if it opens the store the rekey had committed
     * and the pending key becomes current; otherwise the old key still opens it and the
     * pending key is dropped.
     */
    suspend fun open(path: String, vault: StoreKeyVault): WaymarkStore {
        val pending = vault.pendingKey()
        if (pending != null) {
            try {
                val store = WaymarkStore.open(path, pending)
                vault.promotePendingKey()
                return store
            } catch (e: WaymarkException.WrongKey) {
                vault.discardPendingKey()
            } finally {
                pending.fill(0)
            }
        }
        val key = vault.currentKey()
        try {
            return WaymarkStore.open(path, key)
        } finally {
            key.fill(0)
        }
    }
}

/**
 * Re-encrypts the store with a fresh key from [vault]; the old key stays in the vault until the
 * rekey has returned, so a kill at any instant loses nothing (reopen with [WaymarkKeys.open]).
 */
suspend fun WaymarkStore.rekey(vault: StoreKeyVault) {
    val next = vault.createPendingKey()
    try {
        rekey(next)
    } finally {
        next.fill(0)
    }
    vault.promotePendingKey()
}

/**
 * The panic button: deletes the store's keys from [vault] (what makes any copy of the files
 * unreadable), then wipes the store (key out of memory, files overwritten and removed). The
 * store is wiped even if deleting the keys fails, and the failure is thrown afterwards.
 *
 * Returns the credentials to tell each server that this device is gone
 * (`sendRevocation(pending)` when the network allows).
 */
suspend fun WaymarkStore.wipe(vault: StoreKeyVault): WipeReport {
    val keyFailure = runCatching { vault.deleteAll() }.exceptionOrNull()
    val report = wipe()
    if (keyFailure != null) throw keyFailure
    return report
}
