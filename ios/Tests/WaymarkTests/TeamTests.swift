// A team's security from an app's point of view: a coordinator's revocation rotates the key in
// the same call, and a server that lies about the team is caught. Mirrors
// bindings/python/tests/test_team.py.
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
}
