// The store key's life on the device: opening with it, changing it without losing data, and
// destroying it with the store (the panic button).
//
//     let vault = KeychainKeyVault()
//     let store = try await WaymarkKeys.open(path: dbPath, vault: vault)
//     try await store.rekey(vault: vault)        // nothing lost if the app is killed meanwhile
//     let report = try await store.wipe(vault: vault)   // keys deleted, store destroyed
//
// Platform-neutral: the key's home is a `StoreKeyVault` (the Keychain in apps, anything in the
// Linux tests).
import Foundation

/// Where the store's 32-byte key lives, with room for a second, pending key while the store is
/// being re-keyed: the old key must survive until the rekey has committed, because a process
/// killed during it leaves a store that opens with either key.
public protocol StoreKeyVault {
    /// The current key, created on first call.
    func currentKey() throws -> Data
    /// A fresh random key kept beside the current one until `promotePendingKey()`.
    func createPendingKey() throws -> Data
    /// The pending key of a rekey that started and was not promoted, if any.
    func pendingKey() throws -> Data?
    /// Makes the pending key the current one and forgets the old one.
    func promotePendingKey() throws
    /// Forgets the pending key.
    func discardPendingKey() throws
    /// Forgets every key: what they encrypted can never be read again.
    func deleteAll() throws
}

/// Opening a store with a `StoreKeyVault`'s key.
public enum WaymarkKeys {
    /// Opens the store at `path` with the vault's key. If a rekey was cut short (the app was
    /// killed), the pending key is tried first: if it opens the store the rekey had committed
    /// and it becomes current; otherwise the old key still opens it and the pending key is
    /// dropped.
    public static func open(path: String, vault: StoreKeyVault) async throws -> WaymarkStore {
        if let pending = try vault.pendingKey() {
            do {
                let store = try await WaymarkStore.open(path: path, key: pending)
                try vault.promotePendingKey()
                return store
            } catch WaymarkError.WrongKey {
                try vault.discardPendingKey()
            }
        }
        return try await WaymarkStore.open(path: path, key: try vault.currentKey())
    }
}

extension WaymarkStore {
    /// Re-encrypts the store with a fresh key from `vault`; the old key stays in the vault until
    /// the rekey has returned, so a kill at any instant loses nothing (reopen with
    /// `WaymarkKeys.open`).
    public func rekey(vault: StoreKeyVault) async throws {
        try await rekey(newKey: try vault.createPendingKey())
        try vault.promotePendingKey()
    }

    /// The panic button: deletes the store's keys from `vault` (what makes any copy of the files
    /// unreadable), then wipes the store (key out of memory, files overwritten and removed). The
    /// store is wiped even if deleting the keys fails; that failure is thrown afterwards.
    ///
    /// Returns the credentials to tell each server that this device is gone
    /// (`sendRevocation(pending:)` when the network allows).
    public func wipe(vault: StoreKeyVault) async throws -> WipeReport {
        var keyFailure: Error?
        do { try vault.deleteAll() } catch { keyFailure = error }
        let report = try await wipe()
        if let keyFailure { throw keyFailure }
        return report
    }
}

#if canImport(Security)
/// The store key in the Keychain as a `StoreKeyVault`: the current key under `account`, the
/// pending key of a rekey under "`account`.next".
public struct KeychainKeyVault: StoreKeyVault {
    public let service: String
    public let account: String
    var next: String { account + ".next" }

    public init(service: String = KeychainKey.defaultService, account: String = KeychainKey.defaultAccount) {
        self.service = service
        self.account = account
    }

    public func currentKey() throws -> Data {
        try KeychainKey.databaseKey(service: service, account: account)
    }

    public func createPendingKey() throws -> Data {
        try KeychainKey.delete(service: service, account: next)
        return try KeychainKey.databaseKey(service: service, account: next)
    }

    public func pendingKey() throws -> Data? {
        try KeychainKey.existingKey(service: service, account: next)
    }

    public func promotePendingKey() throws {
        guard let key = try pendingKey() else { return }
        // Killed between these two steps, both items hold the new key: the next open tries the
        // pending one first, which works, and promotes again.
        try KeychainKey.replace(service: service, account: account, with: key)
        try KeychainKey.delete(service: service, account: next)
    }

    public func discardPendingKey() throws {
        try KeychainKey.delete(service: service, account: next)
    }

    public func deleteAll() throws {
        try KeychainKey.delete(service: service, account: account)
        try KeychainKey.delete(service: service, account: next)
    }
}
#endif
