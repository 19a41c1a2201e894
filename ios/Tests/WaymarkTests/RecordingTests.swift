// An outreach team's day on one or two phones, offline, through the generated Swift bindings.
import Foundation
import XCTest
@testable import Waymark

final class RecordingTests: StoreTestCase {
    func testARecordedVisitReadsBackExactlyAsTypedAndSurvivesReopening() async throws {
        let key = Data(repeating: 7, count: 32)
        var store: WaymarkStore? = try await openStore(path("phone.db"), key: key)
        let team = try store!.createWorkspace(name: "North district outreach")
        let visitId = try store!.createVisit(workspaceId: team.id, visit: busStationVisit())

        let visit = try store!.getVisit(id: visitId)
        XCTAssertEqual(visit.workspaceId, team.id)
        XCTAssertEqual(visit.place.name, "Central bus station, north gate")
        XCTAssertEqual(visit.peopleReached, 4)
        XCTAssertEqual(visit.indicators, ["deception"])
        XCTAssertEqual(visit.referrals.map { [$0.kind, $0.to] }, [["shelter", "Casa Esperanza"]])
        XCTAssertEqual(visit.referrals.map(\.status), [.made])
        XCTAssertTrue(visit.followUp.needed)
        XCTAssertEqual(visit.followUp.due, "2026-11-08")
        XCTAssertEqual(visit.notes, "Two young men waiting for a recruiter.")
        XCTAssertFalse(visit.deleted)
        XCTAssertFalse(visit.hasConflicts)

        store = nil
        let reopened = try await openStore(path("phone.db"), key: key)
        XCTAssertEqual(try reopened.getVisit(id: visitId), visit)
        XCTAssertEqual(try reopened.workspaces().map(\.name), ["North district outreach"])
    }

    func testVisitsAreListedNewestFirstAndFiltered() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        let station = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        let market = try store.createVisit(workspaceId: team.id, visit: marketVisit())

        func ids(_ filter: VisitFilter) throws -> [String] { try store.listVisits(filter: filter).map(\.id) }
        XCTAssertEqual(try ids(VisitFilter()), [market, station])
        XCTAssertEqual(try ids(VisitFilter(area: "North")), [station])
        XCTAssertEqual(try ids(VisitFilter(indicator: "isolation")), [market])
        XCTAssertEqual(try ids(VisitFilter(since: nov1 + hour)), [market])
        XCTAssertEqual(try ids(VisitFilter(until: nov1 + hour)), [station])
        XCTAssertEqual(try ids(VisitFilter(followUp: .open)), [station])
        XCTAssertEqual(try ids(VisitFilter(followUp: .overdueOn(date: "2026-11-09"))), [station])

        try store.updateVisit(id: station, edits: [.followUpDone(done: true), .addTag(tag: "night")])
        XCTAssertEqual(try ids(VisitFilter(followUp: .open)), [])
        XCTAssertEqual(try store.getVisit(id: station).tags, ["night"])

        try store.deleteRecord(id: market)
        XCTAssertEqual(try ids(VisitFilter()), [station])
        XCTAssertEqual(Set(try ids(VisitFilter(includeDeleted: true))), [station, market])
        XCTAssertTrue(try store.getVisit(id: market).deleted)
    }

    func testAWorkshopCountsNamedAttendeesAndAnonymousTallies() async throws {
        let store = try await openStore(path("tablet.db"))
        let team = try store.createWorkspace(name: "Team")
        let workshopId = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        let maria = try store.checkIn(workshopId: workshopId, attendee: attendee("María"))
        _ = try store.checkIn(workshopId: workshopId, attendee: attendee("Jorge", gender: "male"))
        _ = try store.checkIn(workshopId: workshopId, attendee: attendee("Lucía"))
        try store.withdrawAttendee(workshopId: workshopId, attendeeId: maria)
        for _ in 0..<3 {
            try store.addToTally(workshopId: workshopId, ageBand: "18_24", gender: "female", delta: 1)
        }
        try store.addToTally(workshopId: workshopId, ageBand: "18_24", gender: "male", delta: 2)
        let feedback = try store.addFeedback(
            workshopId: workshopId, score: 5, comment: "Very useful, now I know what to check in an offer.")
        try store.updateWorkshop(id: workshopId, edits: [.durationMinutes(minutes: 100)])

        let attendance = try store.attendance(workshopId: workshopId)
        XCTAssertEqual(
            [attendance.named, attendance.withdrawn, attendance.anonymous, attendance.total], [2, 1, 5, 7])
        XCTAssertEqual(
            Dictionary(uniqueKeysWithValues: attendance.byGender.map { ($0.key, $0.count) }),
            ["female": 4, "male": 3])

        let workshop = try store.getWorkshop(id: workshopId)
        XCTAssertEqual(workshop.durationMinutes, 100)
        XCTAssertEqual(workshop.facilitators, ["Ana", "Luis"])
        XCTAssertEqual(workshop.attendees.map(\.name), ["María", "Jorge", "Lucía"])
        XCTAssertEqual(workshop.attendees.map(\.withdrawn), [true, false, false])
        XCTAssertEqual(workshop.feedback.map(\.id), [feedback])
        XCTAssertEqual(workshop.feedback.map(\.score), [5])

        let listed = try store.listWorkshops(filter: WorkshopFilter(topic: "safe_migration"))
        XCTAssertEqual(listed.map(\.id), [workshopId])
        XCTAssertEqual(listed.map(\.attendance), [7])
        XCTAssertEqual(try store.listWorkshops(filter: WorkshopFilter(area: "South")), [])
    }

    func testSearchFindsNotesAndTitlesAndSaysWhatKindOfRecord() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        let visitId = try store.createVisit(workspaceId: team.id, visit: marketVisit())
        let workshopId = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())

        let hits = try store.search(query: "passports", limit: 10)
        XCTAssertEqual(hits.map(\.id), [visitId])
        XCTAssertEqual(hits.map(\.kind), [.visit])
        XCTAssertTrue(hits[0].snippet.contains("[passports]"), hits[0].snippet)
        XCTAssertEqual(try store.search(query: "san rafael", limit: 10).map(\.id), [workshopId])
        XCTAssertEqual(try store.search(query: "nothing-like-this", limit: 10), [])
    }

    func testTwoPhonesExchangingBundlesOfflineSeeAConflictTheyCanResolve() async throws {
        let ana = try await openStore(path("ana.db"), name: "Ana")
        let luis = try await openStore(path("luis.db"), name: "Luis")
        let team = try ana.createWorkspace(name: "Team")
        let visitId = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())

        let code = try await ana.createInvite(workspaceId: team.id, ttlSeconds: 3600)
        let joined = try await luis.join(code: code)
        XCTAssertEqual(joined.id, team.id)
        let report = try await luis.importChanges(bundle: try await ana.exportChanges())
        XCTAssertTrue(report.changed.contains(visitId))

        // Both correct the head count, offline, to different numbers.
        try ana.updateVisit(id: visitId, edits: [.peopleReached(count: 5)])
        try luis.updateVisit(id: visitId, edits: [.peopleReached(count: 7)])
        _ = try await luis.importChanges(bundle: try await ana.exportChanges(since: try await luis.checkpoint()))
        _ = try await ana.importChanges(bundle: try await luis.exportChanges(since: try await ana.checkpoint()))

        for store in [ana, luis] {
            XCTAssertTrue(try store.getVisit(id: visitId).hasConflicts)
            let conflicts = try store.conflicts(id: visitId)
            XCTAssertEqual(conflicts.map(\.field), ["people_reached"])
            let values = conflicts.first?.values.map(\.value) ?? []
            XCTAssertEqual(Set(values), [.int(value: 5), .int(value: 7)])
            XCTAssertEqual(Set(conflicts.first?.values.map(\.author.actor) ?? []), [ana.actor(), luis.actor()])
        }

        try ana.resolveConflict(id: visitId, field: "people_reached", chosen: .int(value: 7))
        _ = try await luis.importChanges(bundle: try await ana.exportChanges(since: try await luis.checkpoint()))
        for store in [ana, luis] {
            XCTAssertEqual(try store.conflicts(id: visitId), [])
            XCTAssertEqual(try store.getVisit(id: visitId).peopleReached, 7)
        }
        XCTAssertTrue(try ana.history(id: visitId).last?.fields.contains("people_reached") ?? false)
    }
}
