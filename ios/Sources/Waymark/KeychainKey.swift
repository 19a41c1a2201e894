// The store's 32-byte database key, made once per device and kept in the Keychain.
//
//     let key = try KeychainKey.databaseKey()
//     let store = try await WaymarkStore.open(path: dbURL.path, key: key)
//
// The item is readable after the first unlock following a boot (so background sync can open the
// store while the phone is locked) and never leaves this device: it is not in backups restored
// elsewhere nor in iCloud Keychain. If it is lost (app deleted, device restored to another phone)
// the store cannot be opened: the data comes back by joining the workspace again and syncing.
#if canImport(Security)
import Foundation
import Security

public enum KeychainKey {
    public enum Failure: Error, Equatable {
        /// SecRandomCopyBytes failed.
        case random(OSStatus)
        /// A Keychain call failed (e.g. errSecInteractionNotAllowed before the first unlock).
        case keychain(OSStatus)
        /// The stored item is not a 32-byte key.
        case malformed
    }

    public static let keyLength = 32
    public static let defaultService = "org.waymark.store"
    public static let defaultAccount = "database-key"

    /// The key stored under `service`/`account`, created (random, 32 bytes) on first use.
    public static func databaseKey(
        service: String = defaultService, account: String = defaultAccount
    ) throws -> Data {
        if let existing = try read(service: service, account: account) {
            return existing
        }
        let key = try randomKey()
        var add = baseQuery(service: service, account: account)
        add[kSecValueData as String] = key
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(add as CFDictionary, nil)
        switch status {
        case errSecSuccess:
            return key
        case errSecDuplicateItem:
            // Another thread created it between our read and add: use theirs.
            guard let theirs = try read(service: service, account: account) else {
                throw Failure.keychain(status)
            }
            return theirs
        default:
            throw Failure.keychain(status)
        }
    }

    /// The key stored under `service`/`account`, or nil if there is none (never creates one).
    public static func existingKey(
        service: String = defaultService, account: String = defaultAccount
    ) throws -> Data? {
        try read(service: service, account: account)
    }

    /// Stores `key` under `service`/`account`, replacing what was there (a rekey's new key).
    public static func replace(service: String = defaultService, account: String = defaultAccount, with key: Data) throws {
        guard key.count == keyLength else { throw Failure.malformed }
        let update = [kSecValueData as String: key] as CFDictionary
        var status = SecItemUpdate(baseQuery(service: service, account: account) as CFDictionary, update)
        if status == errSecItemNotFound {
            var add = baseQuery(service: service, account: account)
            add[kSecValueData as String] = key
            add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw Failure.keychain(status) }
    }

    /// Removes the key (the store it opened becomes unreadable). For "wipe this device".
    public static func delete(service: String = defaultService, account: String = defaultAccount) throws {
        let status = SecItemDelete(baseQuery(service: service, account: account) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw Failure.keychain(status)
        }
    }

    static func randomKey() throws -> Data {
        var bytes = [UInt8](repeating: 0, count: keyLength)
        let status = SecRandomCopyBytes(kSecRandomDefault, keyLength, &bytes)
        guard status == errSecSuccess else { throw Failure.random(status) }
        return Data(bytes)
    }

    private static func read(service: String, account: String) throws -> Data? {
        var query = baseQuery(service: service, account: account)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data, data.count == keyLength else { throw Failure.malformed }
            return data
        case errSecItemNotFound:
            return nil
        default:
            throw Failure.keychain(status)
        }
    }

    private static func baseQuery(service: String, account: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
        ]
    }
}
#endif
