// Forgetting from an app's point of view: a name typed into a note and redacted, a record
// erased, an attendee who asked to be removed: gone from every phone, history included.
// Mirrors bindings/python/tests/test_forget.py.
import Foundation
import XCTest
@testable import Waymark

// Not `name`: inside a test case that is XCTestCase.name, the test's own name.
private let typedName = "Zainab Okonkwo-Quadri"

final class ForgetTests: ServerTestCase {
    /// The coordinator's phone with a workspace, and Ana's phone admitted to it.
    func pair() async throws -> (WaymarkStore, WaymarkStore, Workspace) {
        let coordinator = try await openStore(path("coordinator.db"), name: "Coordinator")
        let team = try coordinator.createWorkspace(name: "North district outreach")
        let (_, token) = try server.workspaceAndToken()
        try await coordinator.connectWorkspace(workspaceId: team.id, serverUrl: server.url, enrollmentToken: token)
        _ = try await coordinator.sync()
        let ana = try await joinTeam(coordinator, team.id, path("ana.db"), name: "Ana")
        return (coordinator, ana, team)
    }

    func testARedactedNameAndAnErasedRecordAreGoneFromEveryPhone() async throws {
        let (coordinator, ana, team) = try await pair()
        let typed = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "Met \(typedName) at gate 3."))
        let doomed = try ana.createVisit(workspaceId: team.id, visit: busStationVisit(notes: "Her brother's address."))
        _ = try await ana.sync()
        _ = try await coordinator.sync()
        XCTAssertFalse(try coordinator.search(query: typedName, limit: 10).isEmpty, "the name reached the coordinator first")

        try ana.setVisitNotes(id: typed, text: "Met a young woman at gate 3.")
        try ana.redactRecord(id: typed, field: "notes")
        try ana.eraseRecord(id: doomed)
        _ = try await ana.sync()
        _ = try await coordinator.sync()

        for phone in [ana, coordinator] {
            let who = try phone.deviceName()
            XCTAssertEqual(try phone.getVisit(id: typed).notes, "Met a young woman at gate 3.", who)
            XCTAssertEqual(try phone.history(id: typed).count, 1, "\(who) keeps no earlier version of the notes")
            XCTAssertEqual(try phone.search(query: typedName, limit: 10), [], who)
            XCTAssertEqual(try phone.search(query: "brother", limit: 10), [], who)
            let erased = try phone.getVisit(id: doomed)
            XCTAssertTrue(erased.deleted, who)
            XCTAssertEqual(erased.notes, "", who)
        }
        await assertThrows("redacting a field records do not have", {
            try ana.redactRecord(id: typed, field: "password")
        }) {
            if case .InvalidInput = $0 { return true } else { return false }
        }
    }

    func testAnAttendeeWhoAsksToBeRemovedLeavesNoNameOrContact() async throws {
        let (coordinator, ana, team) = try await pair()
        let workshop = try ana.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        let maria = try ana.checkIn(
            workshopId: workshop,
            attendee: NewAttendee(
                name: "María Lopez", ageBand: "18_24", gender: "female", contact: "+52 555 0101", consent: true))
        _ = try ana.checkIn(workshopId: workshop, attendee: attendee("Jorge"))
        _ = try await ana.sync()
        _ = try await coordinator.sync()

        try ana.removeAttendeeData(workshopId: workshop, attendeeId: maria)
        _ = try await ana.sync()
        _ = try await coordinator.sync()
        for phone in [ana, coordinator] {
            let who = try phone.deviceName()
            let attendees = try phone.getWorkshop(id: workshop).attendees
            let removed = try XCTUnwrap(attendees.first { $0.id == maria }, who)
            XCTAssertTrue(removed.withdrawn, who)
            XCTAssertEqual(removed.name, "", who)
            XCTAssertNil(removed.contact, who)
            XCTAssertEqual(attendees.filter { !$0.withdrawn }.map(\.name), ["Jorge"], who)
            XCTAssertEqual(try phone.search(query: "Lopez", limit: 10), [], who)
            XCTAssertEqual(try phone.history(id: workshop).count, 1, "\(who) keeps no earlier version of the workshop")
        }
    }
}
