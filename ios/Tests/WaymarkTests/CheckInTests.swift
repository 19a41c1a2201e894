// Staff safety check-ins from an app's point of view: past its time the server raises the
// alarm (the operator's hook runs, the coordinator sees it overdue with the details to look
// for the worker); a close with the duress PIN raises it too, while the worker's own phone
// shows a safe close. Mirrors bindings/python/tests/test_check_ins.py.
import Foundation
import XCTest
@testable import Waymark

final class CheckInTests: ServerTestCase {
    var alerts: URL!
    /// The workspace's id on the server, as the hook names it.
    var serverWorkspace = ""

    /// A server that finds check-ins overdue one second past their deadline, with a hook that
    /// appends "kind workspace device minutes check-in" to `alerts`.
    override func setUpWithError() throws {
        try super.setUpWithError()
        server.stop()
        alerts = path("alerts.txt")
        let hook = path("alert.sh")
        try "#!/bin/sh\necho \"$WAYMARK_ALERT_KIND $1 $2 $3 $WAYMARK_CHECK_IN\" >> '\(alerts.path)'\n"
            .write(to: hook, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: hook.path)
        server = try TestServer(
            dataDir: path("watching-server-data"),
            serveArgs: ["--check-in-grace", "1s", "--alert-command", hook.path])
    }

    func pair() async throws -> (WaymarkStore, WaymarkStore, Workspace) {
        let coordinator = try await openStore(path("coordinator.db"), name: "Coordinator")
        let team = try coordinator.createWorkspace(name: "North district outreach")
        let (ws, token) = try server.workspaceAndToken()
        serverWorkspace = ws
        try await coordinator.connectWorkspace(workspaceId: team.id, serverUrl: server.url, enrollmentToken: token)
        _ = try await coordinator.sync()
        let amina = try await joinTeam(coordinator, team.id, path("amina.db"), name: "Amina")
        return (coordinator, amina, team)
    }

    func waitForAlerts(_ n: Int) throws -> [String] {
        let until = Date().addingTimeInterval(30)
        while true {
            let text = (try? String(contentsOf: alerts, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").map(String.init)
            if lines.count >= n { return lines }
            guard Date() < until else {
                XCTFail("the alert hook did not run: \(lines)")
                return lines
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    func find(_ store: WaymarkStore, _ workspaceId: String, _ id: String) throws -> CheckIn {
        try XCTUnwrap(store.checkIns(workspaceId: workspaceId).first { $0.id == id })
    }

    func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func testAnOverdueCheckInReachesTheCoordinatorAndTheHook() async throws {
        let (coordinator, amina, team) = try await pair()
        let details = CheckInDetails(place: "Golden Lotus karaoke", withWhom: "Joseph", note: "Back room")
        let started = try await amina.startCheckIn(workspaceId: team.id, expectedBack: nowMs() + 1500, details: details)
        XCTAssertTrue(started.watched && started.own)
        XCTAssertEqual(started.state, .open)

        _ = try await coordinator.sync()
        let seen = try find(coordinator, team.id, started.id)
        XCTAssertEqual(seen.state, .open)
        XCTAssertEqual(seen.details, details)
        XCTAssertEqual(seen.deviceName, "Amina")

        XCTAssertEqual(try waitForAlerts(1), ["overdue \(serverWorkspace) Amina 0 \(started.id)"])
        _ = try await coordinator.sync()
        let overdue = try find(coordinator, team.id, started.id)
        XCTAssertEqual(overdue.state, .overdue)
        XCTAssertEqual(overdue.details.place, "Golden Lotus karaoke")
    }

    func testADuressCloseLooksSafeOnThePhoneAndRaisesTheAlarm() async throws {
        let (coordinator, amina, team) = try await pair()
        try amina.setDuressPin(pin: "4711")
        let hour = nowMs() + 3_600_000
        let safe = try await amina.closeCheckIn(
            checkInId: try await amina.startCheckIn(workspaceId: team.id, expectedBack: hour, details: CheckInDetails(place: "Market")).id,
            pin: "1234")
        let forced = try await amina.closeCheckIn(
            checkInId: try await amina.startCheckIn(workspaceId: team.id, expectedBack: hour, details: CheckInDetails(place: "Port")).id,
            pin: "4711")
        XCTAssertEqual(safe.state, .closed)
        XCTAssertEqual(forced.state, .closed)
        XCTAssertEqual(try amina.checkIns(workspaceId: team.id).map(\.state), [.closed, .closed])

        XCTAssertEqual(try waitForAlerts(1), ["alarm \(serverWorkspace) Amina 0 \(forced.id)"])
        _ = try await coordinator.sync()
        XCTAssertEqual(try find(coordinator, team.id, forced.id).state, .alarm)
        XCTAssertEqual(try find(coordinator, team.id, safe.id).state, .closed)
        await assertThrows("extending a closed check-in", {
            _ = try await amina.extendCheckIn(checkInId: forced.id, expectedBack: hour)
        }) {
            if case .InvalidInput = $0 { return true } else { return false }
        }
    }
}
