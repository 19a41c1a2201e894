// Two phones of a team syncing through a real `waymark-server` process: records, settings and
// translations, conflicts and their resolution, progress (also as an AsyncSequence) and
// cancelling. Mirrors bindings/python/tests/test_sync.py (and the settings and conflict journeys
// of test_recording.py, here through the server).
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

    func testSettingsAndTranslationsReachTheOtherPhoneAndAConflictIsResolvedWithItsHistory() async throws {
        let (ana, luis, team) = try await connectedPair()
        try ana.updateSettings(workspaceId: team.id, edits: [
            .addEntry(
                taxonomy: "visit_types", key: "market_outreach",
                labels: [TaxonomyLabel(lang: "en", text: "Market outreach")]),
            .setLabel(taxonomy: "visit_types", key: "market_outreach", lang: "es", text: "Alcance en mercados"),
            .setLabel(taxonomy: "visit_types", key: "home_visit", lang: "fr", text: "Visite à domicile"),
            .archive(taxonomy: "visit_types", key: "online_outreach", archived: true),
            .rename(name: "North team"),
        ])
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())
        _ = try await ana.sync()
        _ = try await luis.sync()

        let settings = try luis.settings(workspaceId: team.id)
        XCTAssertEqual(settings.name, "North team")
        XCTAssertEqual(try luis.workspaces().map(\.name), ["North team"])
        let entries = try XCTUnwrap(settings.taxonomies.first { $0.name == "visit_types" }).entries
        let visitTypes = Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0) })
        XCTAssertEqual(visitTypes["market_outreach"]?.labels, [
            TaxonomyLabel(lang: "en", text: "Market outreach"), TaxonomyLabel(lang: "es", text: "Alcance en mercados"),
        ])
        XCTAssertTrue(visitTypes["home_visit"]?.labels.contains(TaxonomyLabel(lang: "fr", text: "Visite à domicile")) ?? false)
        XCTAssertEqual(visitTypes["online_outreach"]?.archived, true)
        XCTAssertEqual(try ana.settings(workspaceId: team.id).taxonomies, settings.taxonomies)

        // Offline, both correct the head count to different numbers; the sync keeps both.
        try ana.updateVisit(id: visitId, edits: [.peopleReached(count: 5)])
        try luis.updateVisit(id: visitId, edits: [.peopleReached(count: 7)])
        for _ in 0..<2 {
            _ = try await ana.sync()
            _ = try await luis.sync()
        }
        for store in [ana, luis] {
            XCTAssertTrue(try store.getVisit(id: visitId).hasConflicts)
            let conflicts = try store.conflicts(id: visitId)
            XCTAssertEqual(conflicts.map(\.field), ["people_reached"])
            XCTAssertEqual(Set(conflicts.first?.values.map(\.value) ?? []), [.int(value: 5), .int(value: 7)])
            XCTAssertEqual(Set(conflicts.first?.values.map(\.author.actor) ?? []), [ana.actor(), luis.actor()])
        }

        try ana.resolveConflict(id: visitId, field: "people_reached", chosen: .int(value: 7))
        _ = try await ana.sync()
        _ = try await luis.sync()
        for store in [ana, luis] {
            XCTAssertEqual(try store.conflicts(id: visitId), [])
            XCTAssertEqual(try store.getVisit(id: visitId).peopleReached, 7)
        }
        let history = try luis.history(id: visitId)
        XCTAssertGreaterThanOrEqual(history.count, 3, "\(history)")
        XCTAssertTrue(history.last?.fields.contains("people_reached") ?? false, "\(history)")
        XCTAssertEqual(Set(history.map(\.author.actor)), [ana.actor(), luis.actor()])
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

    func testSyncWithProgressYieldsProgressThenTheReportAndTheNextSyncCompletesAfterLeavingEarly() async throws {
        let (ana, luis, team) = try await connectedPair()
        for i in 0..<20 {
            _ = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "Visit number \(i)."))
        }
        var pushed: SyncReport?
        for try await event in ana.syncWithProgress() {
            if case .done(let report) = event { pushed = report }
        }
        XCTAssertGreaterThan(pushed?.pushed ?? 0, 0)

        // Leaving the loop at the first event ends the sequence (and cancels the sync through its
        // token); nothing is lost by it.
        var first: SyncEvent?
        for try await event in luis.syncWithProgress() {
            first = event
            break
        }
        guard case .progress = first else { return XCTFail("the first event was \(String(describing: first))") }

        // The next sync completes, reporting its progress and then its report.
        var progress: [SyncProgress] = []
        var report: SyncReport?
        for try await event in luis.syncWithProgress() {
            XCTAssertNil(report, "nothing comes after the report")
            switch event {
            case .progress(let p): progress.append(p)
            case .done(let r): report = r
            }
        }
        let done = try XCTUnwrap(report)
        XCTAssertFalse(progress.isEmpty, "progress was reported")
        XCTAssertTrue(progress.allSatisfy { $0.workspaceId == team.id && $0.blobsDone <= $0.blobsTotal })
        if done.pulled > 0 {
            XCTAssertEqual(progress.last { $0.phase == .pull }?.blobsDone, done.pulled)
        }
        XCTAssertEqual(try luis.listVisits(filter: VisitFilter()), try ana.listVisits(filter: VisitFilter()))

        // A failure is thrown to the loop.
        server.stop()
        await assertThrows("a sync with the server down, as a sequence", {
            for try await _ in ana.syncWithProgress() {}
        }) { if case .Network = $0 { return true } else { return false } }
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
