// The key helpers of StoreKeyVault.swift with a vault standing in for the Keychain: the panic
// button deletes the keys and every file, and a rekey keeps every record whether or not the app
// is killed before the vault learns the new key. Mirrors android/jvm WipeAndRekeyTest.kt.
import Foundation
import XCTest
@testable import Waymark

/// Keys in memory, as the Keychain keeps them for KeychainKeyVault.
final class MemoryKeyVault: StoreKeyVault {
    var current: Data?
    var pending: Data?

    func currentKey() throws -> Data {
        if current == nil { current = randomKey() }
        return current!
    }
    func createPendingKey() throws -> Data {
        pending = randomKey()
        return pending!
    }
    func pendingKey() throws -> Data? { pending }
    func promotePendingKey() throws {
        if let pending { current = pending }
        pending = nil
    }
    func discardPendingKey() throws { pending = nil }
    func deleteAll() throws {
        current = nil
        pending = nil
    }
}

final class WipeTests: ServerTestCase {
    func storeFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasPrefix("phone.db") }.sorted()
    }

    func testThePanicButtonDeletesTheKeysAndEveryFileAndHandsBackWhatRevokingNeeds() async throws {
        let vault = MemoryKeyVault()
        let store = try await WaymarkKeys.open(path: path("phone.db").path, vault: vault)
        let team = try store.createWorkspace(name: "North district outreach")
        let (_, token) = try server.workspaceAndToken()
        try await store.connectWorkspace(workspaceId: team.id, serverUrl: server.url, enrollmentToken: token)
        _ = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        _ = try store.listVisits(filter: VisitFilter())
        XCTAssertEqual(try storeFiles(), ["phone.db", "phone.db-shm", "phone.db-wal"])

        let report = try await store.wipe(vault: vault)
        XCTAssertEqual(try storeFiles(), [])
        XCTAssertNil(vault.current)
        XCTAssertNil(vault.pending)
        XCTAssertEqual(report.pendingRevocations.map(\.workspaceId), [team.id])
        XCTAssertEqual(report.pendingRevocations.first?.serverUrl, server.url)
        await assertThrows("a list after wipe", { try store.listVisits(filter: VisitFilter()) }) { $0 == .Wiped }
        await assertThrows("a second wipe", { try await store.wipe(vault: vault) }) { $0 == .Wiped }
    }

    func testRekeyWithTheVaultKeepsEveryRecordAndTheOldKeyNoLongerOpensTheStore() async throws {
        let vault = MemoryKeyVault()
        let dbPath = path("phone.db").path
        let old = try vault.currentKey()
        var store: WaymarkStore? = try await WaymarkKeys.open(path: dbPath, vault: vault)
        let team = try store!.createWorkspace(name: "North district outreach")
        let ids = try [busStationVisit(), marketVisit()].map {
            try store!.createVisit(workspaceId: team.id, visit: $0)
        }
        try await store!.rekey(vault: vault)
        XCTAssertEqual(try store!.listVisits(filter: VisitFilter()).map(\.id).sorted(), ids.sorted())
        store = nil

        XCTAssertNil(vault.pending)
        XCTAssertNotEqual(vault.current, old)
        await assertThrows("the old key", { try await WaymarkStore.open(path: dbPath, key: old) }) { $0 == .WrongKey }
        let reopened = try await WaymarkKeys.open(path: dbPath, vault: vault)
        XCTAssertEqual(try reopened.listVisits(filter: VisitFilter()).map(\.id).sorted(), ids.sorted())
    }

    func testARekeyCutShortBeforeItCommittedOpensWithTheOldKey() async throws {
        let vault = MemoryKeyVault()
        let dbPath = path("phone.db").path
        let old = try vault.currentKey()
        var store: WaymarkStore? = try await WaymarkKeys.open(path: dbPath, vault: vault)
        let id = try store!.createVisit(workspaceId: try store!.createWorkspace(name: "Team").id, visit: busStationVisit())
        store = nil
        // Killed after making the new key, before the store used it.
        _ = try vault.createPendingKey()
        let reopened = try await WaymarkKeys.open(path: dbPath, vault: vault)
        XCTAssertEqual(try reopened.getVisit(id: id).peopleReached, 4)
        XCTAssertNil(vault.pending)
        XCTAssertEqual(vault.current, old)
    }

    func testARekeyThatCommittedBeforeTheAppDiedOpensWithTheNewKey() async throws {
        let vault = MemoryKeyVault()
        let dbPath = path("phone.db").path
        var store: WaymarkStore? = try await WaymarkKeys.open(path: dbPath, vault: vault)
        _ = try store!.createVisit(workspaceId: try store!.createWorkspace(name: "Team").id, visit: busStationVisit())
        // The store took the new key; the app died before the vault promoted it.
        let next = try vault.createPendingKey()
        try await store!.rekey(newKey: next)
        store = nil
        let reopened = try await WaymarkKeys.open(path: dbPath, vault: vault)
        XCTAssertEqual(try reopened.listVisits(filter: VisitFilter()).count, 1)
        XCTAssertNil(vault.pending)
        XCTAssertEqual(vault.current, next)
    }
}
