// Two phones of a team syncing through a real `waymark-server` process.
import Foundation
import XCTest
@testable import Waymark

final class SyncTests: ServerTestCase {
    /// Ana's phone with a workspace on the server, and Luis's phone joined by invite.
    func connectedPair() async throws -> (WaymarkStore, WaymarkStore, Workspace) {
        let ana = try await openStore(path("ana.db"), name: "Ana")
        let luis = try await openStore(path("luis.db"), name: "Luis")
        let team = try ana.createWorkspace(name: "North district outreach")
        let (_, token) = try server.workspaceAndToken()
        try await ana.connectWorkspace(workspaceId: team.id, serverUrl: server.url, enrollmentToken: token)
        let code = try await ana.createInvite(workspaceId: team.id, ttlSeconds: 3600)
        let joined = try await luis.join(code: code)
        XCTAssertEqual(joined, team)
        return (ana, luis, team)
    }

    func testTwoPhonesEditingOneNoteOfflineBothKeepTheirWordsAfterSync() async throws {
        let (ana, luis, team) = try await connectedPair()
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "Two men waiting."))
        let workshopId = try ana.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        _ = try ana.checkIn(workshopId: workshopId, attendee: attendee("María"))
        let pushed = try await ana.sync()
        XCTAssertGreaterThan(pushed.pushed, 0)
        let pulled = try await luis.sync()
        XCTAssertTrue(pulled.changed.contains(visitId))
        XCTAssertTrue(pulled.changed.contains(workshopId))
        XCTAssertEqual(try luis.getVisit(id: visitId).notes, "Two men waiting.")

        // Offline, both add to the same note.
        try ana.setVisitNotes(id: visitId, text: "Two men waiting. One holds no passport.")
        try luis.setVisitNotes(id: visitId, text: "Two men waiting by gate 3.")
        _ = try luis.checkIn(workshopId: workshopId, attendee: attendee("Jorge", gender: "male"))
        for _ in 0..<2 {
            _ = try await ana.sync()
            _ = try await luis.sync()
        }

        for store in [ana, luis] {
            let notes = try store.getVisit(id: visitId).notes
            XCTAssertTrue(notes.contains("One holds no passport."), notes)
            XCTAssertTrue(notes.contains("by gate 3"), notes)
        }
        XCTAssertEqual(try ana.getVisit(id: visitId), try luis.getVisit(id: visitId))
        XCTAssertEqual(try ana.listVisits(filter: VisitFilter()), try luis.listVisits(filter: VisitFilter()))
        XCTAssertEqual(try ana.listWorkshops(filter: WorkshopFilter()), try luis.listWorkshops(filter: WorkshopFilter()))
        XCTAssertEqual(try ana.attendance(workshopId: workshopId).named, 2)
        XCTAssertEqual(try ana.pendingChanges(workspaceId: team.id), 0)
        XCTAssertEqual(try ana.setAsideBlobs(), [])
    }

    func testSyncReportsProgressWhileItPushesAndPulls() async throws {
        let (ana, luis, team) = try await connectedPair()
        for i in 0..<5 {
            _ = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "Visit number \(i)."))
        }

        let pushing = ProgressRecorder()
        let pushReport = try await ana.sync(listener: pushing)
        let push = pushing.snapshot().filter { $0.phase == .push }
        XCTAssertFalse(push.isEmpty, "progress was reported while pushing")
        XCTAssertEqual(push.last?.blobsDone, pushReport.pushed)
        XCTAssertTrue(push.allSatisfy { $0.workspaceId == team.id && $0.blobsDone <= $0.blobsTotal })

        let pulling = ProgressRecorder()
        let pullReport = try await luis.sync(listener: pulling)
        let pull = pulling.snapshot().filter { $0.phase == .pull }
        XCTAssertGreaterThan(pullReport.pulled, 0)
        XCTAssertEqual(pull.last?.blobsDone, pullReport.pulled)
        XCTAssertGreaterThan(pull.last?.bytesDone ?? 0, 0)
    }

    func testACancelledSyncThrowsCancelledAndTheNextSyncCompletes() async throws {
        let (ana, luis, team) = try await connectedPair()
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())
        _ = try await ana.sync()

        let already = CancellationToken()
        already.cancel()
        XCTAssertTrue(already.isCancelled())
        await assertThrows("a sync with a cancelled token", { try await luis.sync(cancel: already) }) {
            $0 == .Cancelled
        }

        // Cancelled from the progress callback: stops at the next request.
        let token = CancellationToken()
        await assertThrows("a sync cancelled while it runs", {
            try await luis.sync(listener: ProgressRecorder(cancelWith: token), cancel: token)
        }) { $0 == .Cancelled }

        _ = try await luis.sync()
        XCTAssertEqual(try luis.getVisit(id: visitId).notes, try ana.getVisit(id: visitId).notes)
    }

    func testTheChangeListenerHearsWhichRecordsASyncBrought() async throws {
        let (ana, luis, team) = try await connectedPair()
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())
        _ = try await ana.sync()

        let heard = ChangeRecorder()
        let handle = luis.addChangeListener(listener: heard)
        let report = try await luis.sync()
        XCTAssertTrue(heard.ids().contains(visitId))
        XCTAssertTrue(Set(report.changed).isSubset(of: Set(heard.ids())))
        handle.cancel()
    }

    func testAnInviteCannotBeUsedTwice() async throws {
        let (ana, _, team) = try await connectedPair()
        let code = try await ana.createInvite(workspaceId: team.id, ttlSeconds: 3600)
        let other = try await openStore(path("other.db"))
        _ = try await other.join(code: code)
        let third = try await openStore(path("third.db"))
        await assertThrows("joining with a used invite", { try await third.join(code: code) }) {
            $0 == .InviteUsed
        }
    }

    func testAnUnreachableServerIsANetworkErrorAndNothingIsLost() async throws {
        let (ana, _, team) = try await connectedPair()
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())
        server.stop()
        await assertThrows("a sync with the server down", { try await ana.sync() }) {
            if case .Network = $0 { return true } else { return false }
        }
        XCTAssertGreaterThan(try ana.pendingChanges(workspaceId: team.id), 0)
        XCTAssertEqual(try ana.getVisit(id: visitId).peopleReached, 4)
    }
}
