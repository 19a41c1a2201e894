// A team's security from an app's point of view: a phone joins with an approval invite once the
// coordinator approves the code it shows, members cannot revoke others, a coordinator's
// revocation rotates the key in the same call, a server that lies about the team is caught, and
// a server restored from a backup loses nothing. Mirrors bindings/python/tests/test_team.py.
import Foundation
import XCTest
@testable import Waymark

final class TeamTests: ServerTestCase {
    var hostile: HostileTestServer?

    override func tearDownWithError() throws {
        hostile?.stop()
        hostile = nil
        try super.tearDownWithError()
    }

    /// The coordinator's phone with a workspace on the server, reached at `url` for good: a
    /// membership keeps the URL it was made with.
    func coordinatorWithWorkspace(url: String? = nil) async throws -> (WaymarkStore, Workspace) {
        let coordinator = try await openStore(path("coordinator.db"), name: "Coordinator")
        let team = try coordinator.createWorkspace(name: "North district outreach")
        let (_, token) = try server.workspaceAndToken()
        try await coordinator.connectWorkspace(
            workspaceId: team.id, serverUrl: url ?? server.url, enrollmentToken: token)
        _ = try await coordinator.sync()
        return (coordinator, team)
    }

    /// The notes of every visit `phone` holds, sorted.
    func notes(_ phone: WaymarkStore) throws -> [String] {
        try phone.listVisits(filter: VisitFilter()).map { try phone.getVisit(id: $0.id).notes }.sorted()
    }

    func testAnApprovalInviteAdmitsAPhoneOnceApprovedAndOnlyACoordinatorRevokes() async throws {
        let (coordinator, team) = try await coordinatorWithWorkspace()
        let visitId = try coordinator.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "For the team."))
        _ = try await coordinator.sync()

        // The code carries no key: Luis reads nothing until the coordinator approves him.
        let code = try await coordinator.createApprovalInvite(workspaceId: team.id, ttlSeconds: 600)
        let luis = try await openStore(path("luis.db"), name: "Luis")
        _ = try await luis.join(code: code)
        let shownOnLuis = try luis.verificationCode(workspaceId: team.id)
        let groups = shownOnLuis.split(separator: " ", omittingEmptySubsequences: false)
        XCTAssertTrue(groups.count == 3 && groups.allSatisfy { $0.count == 4 && $0.allSatisfy(\.isNumber) }, shownOnLuis)
        _ = try await luis.sync()
        await assertThrows("reading before approval", { try luis.getVisit(id: visitId) }) {
            if case .NotFound = $0 { return true } else { return false }
        }

        // The coordinator compares the code on both screens, then approves.
        let pending = try await coordinator.pendingJoins(workspaceId: team.id)
        XCTAssertEqual(pending.map(\.name), ["Luis"])
        XCTAssertEqual(pending.map(\.verified), [true])
        XCTAssertEqual(pending.map(\.verificationCode), [shownOnLuis])
        try await coordinator.approveJoin(workspaceId: team.id, deviceId: try XCTUnwrap(pending.first).deviceId)
        _ = try await luis.sync()
        XCTAssertEqual(try luis.getVisit(id: visitId).notes, "For the team.")
        let stillPending = try await coordinator.pendingJoins(workspaceId: team.id)
        XCTAssertEqual(stillPending, [])
        let members = Dictionary(uniqueKeysWithValues: try coordinator.team(workspaceId: team.id).map { ($0.name, $0) })
        XCTAssertEqual(members["Coordinator"]?.isThisDevice, true)
        XCTAssertEqual(members["Coordinator"]?.role, "coordinator")
        XCTAssertEqual(members["Luis"]?.role, "member")
        XCTAssertEqual(members["Luis"]?.verified, true)

        // A member cannot revoke another phone; the coordinator can, and the phone is refused.
        let ben = try await joinTeam(coordinator, team.id, path("ben.db"), name: "Ben")
        _ = try await luis.sync()
        let benId = try XCTUnwrap(luis.team(workspaceId: team.id).first { $0.name == "Ben" }).deviceId
        await assertThrows("a member revoking another phone", {
            try await luis.revokeDevice(workspaceId: team.id, deviceId: benId)
        }) { if case .NotPermitted = $0 { return true } else { return false } }
        try await coordinator.revokeDevice(workspaceId: team.id, deviceId: benId)
        await assertThrows("a sync of the revoked phone", { try await ben.sync() }) { $0 == .DeviceRevoked }
        let later = try coordinator.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "After Ben left."))
        _ = try await coordinator.sync()
        _ = try await luis.sync()
        XCTAssertEqual(try luis.getVisit(id: later).notes, "After Ben left.")
        XCTAssertEqual(try luis.team(workspaceId: team.id).first { $0.name == "Ben" }?.revoked, true)
    }

    func testACoordinatorRevokesAPhoneAndRotatesTheKeyInOneCall() async throws {
        let (coordinator, team) = try await coordinatorWithWorkspace()
        let ana = try await joinTeam(coordinator, team.id, path("ana.db"), name: "Ana")
        let ben = try await joinTeam(coordinator, team.id, path("ben.db"), name: "Ben")
        _ = try await ana.sync()
        let before = try coordinator.teamStatus(workspaceId: team.id)
        XCTAssertEqual(before.trust, .verified)
        XCTAssertEqual(before.role, "coordinator")
        XCTAssertEqual(try ana.teamStatus(workspaceId: team.id).epoch, before.epoch)

        let benId = try XCTUnwrap(coordinator.team(workspaceId: team.id).first { $0.name == "Ben" }).deviceId
        try await coordinator.revokeDevice(workspaceId: team.id, deviceId: benId)
        let after = try coordinator.teamStatus(workspaceId: team.id)
        XCTAssertEqual(after.epoch, before.epoch + 1, "the same call rotated the workspace key")
        XCTAssertFalse(after.rotationDue)
        XCTAssertGreaterThan(after.logLength, before.logLength)

        let later = try coordinator.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "After Ben left."))
        _ = try await coordinator.sync()
        _ = try await ana.sync()
        XCTAssertEqual(try ana.teamStatus(workspaceId: team.id).epoch, after.epoch)
        XCTAssertEqual(try ana.getVisit(id: later).notes, "After Ben left.")

        await assertThrows("a sync of the revoked phone", { try await ben.sync() }) { $0 == .DeviceRevoked }
        await assertThrows("reading on the revoked phone what came after", { try ben.getVisit(id: later) }) {
            if case .NotFound = $0 { return true } else { return false }
        }
    }

    func testAHostileServerIsReportedAndSyncResumesWhenItStops() async throws {
        let hostile = try HostileTestServer(upstream: server)
        self.hostile = hostile
        let (coordinator, team) = try await coordinatorWithWorkspace(url: hostile.url)
        let ana = try await joinTeam(coordinator, team.id, path("ana.db"), name: "Ana")
        XCTAssertEqual(try ana.teamStatus(workspaceId: team.id).trust, .verified)
        // A newcomer joins: the team changed, so each phone reads the team log at its next sync
        // (and the newcomer's whole view of the team comes from this server).
        let newcomer = try await openStore(path("newcomer.db"), name: "Newcomer")
        _ = try await newcomer.join(code: try await coordinator.createInvite(workspaceId: team.id, ttlSeconds: 600))

        try await hostile.attack("forge-log")
        for phone in [ana, newcomer] {
            await assertThrows("a sync through a server that forges the team log", { try await phone.sync() }) {
                if case .HostileServer(let reason) = $0 { return !reason.isEmpty } else { return false }
            }
            let status = try phone.teamStatus(workspaceId: team.id)
            if case .attacked(let reason) = status.trust {
                XCTAssertFalse(reason.isEmpty)
            } else {
                XCTFail("trust is \(status.trust), not attacked")
            }
            XCTAssertTrue(status.alerts.contains { $0.kind == .fork || $0.kind == .forged }, "\(status.alerts)")
        }

        try await hostile.attack("none")
        _ = try await ana.sync()
        let status = try ana.teamStatus(workspaceId: team.id)
        XCTAssertEqual(status.trust, .verified)
        XCTAssertFalse(status.alerts.isEmpty, "what the server did stays on record")
        _ = try await newcomer.sync()
        _ = try await coordinator.sync()
        _ = try await newcomer.sync()
        XCTAssertEqual(try newcomer.teamStatus(workspaceId: team.id).trust, .verified)
    }

    func testARestoreFromABackupLosesNothing() async throws {
        let (coordinator, team) = try await coordinatorWithWorkspace()
        let ana = try await joinTeam(coordinator, team.id, path("ana.db"), name: "Ana")
        let ben = try await joinTeam(coordinator, team.id, path("ben.db"), name: "Ben")
        for phone in [ana, ben, coordinator] { _ = try await phone.sync() }
        let backup = path("server.backup")
        try server.backup(to: backup)

        // After the backup: Ana records a visit and syncs; then the backup is put back.
        _ = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "After the backup."))
        let pushed = try await ana.sync().pushed
        XCTAssertEqual(pushed, 1)
        try server.restore(from: backup)

        // Ben's visit takes a place in the server's log that Ana's phone has already read past.
        _ = try ben.createVisit(workspaceId: team.id, visit: marketVisit())
        _ = try await ben.sync()
        let report = try await ana.sync()
        XCTAssertGreaterThanOrEqual(report.resent, 1, "\(report)")
        let alerts = try ana.teamStatus(workspaceId: team.id).alerts
        XCTAssertTrue(alerts.contains { $0.kind == .rewound }, "\(alerts)")
        for phone in [ben, coordinator] { _ = try await phone.sync() }

        // A phone that joins now learns everything from the server alone.
        let chidi = try await joinTeam(coordinator, team.id, path("chidi.db"), name: "Chidi")
        let expected = ["After the backup.", marketVisit().notes].sorted()
        for phone in [coordinator, ana, ben, chidi] {
            let name = try phone.deviceName()
            XCTAssertEqual(try notes(phone), expected, name)
        }
    }

    func testAPhoneTheRestoredServerDoesNotKnowKeepsItsOutbox() async throws {
        let (coordinator, team) = try await coordinatorWithWorkspace()
        let backup = path("server.backup")
        try server.backup(to: backup)
        let dara = try await joinTeam(coordinator, team.id, path("dara.db"), name: "Dara")
        try server.restore(from: backup)

        _ = try dara.createVisit(
            workspaceId: team.id, visit: busStationVisit(notes: "Recorded by a phone the server forgot."))
        let pending = try dara.pendingChanges(workspaceId: team.id)
        XCTAssertGreaterThan(pending, 0)
        // Every sync is refused the same way, and nothing waiting to go out is dropped.
        for _ in 0..<2 {
            await assertThrows("a sync of a phone the restored server does not know", { try await dara.sync() }) {
                $0 == .DeviceUnknown
            }
            XCTAssertEqual(try dara.pendingChanges(workspaceId: team.id), pending)
        }
        XCTAssertEqual(try notes(dara), ["Recorded by a phone the server forgot."])
    }
}
