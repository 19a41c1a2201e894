// Bad input throws the WaymarkError case an app can act on; internal errors never kill the
// process; change listeners hear every write until their handle is cancelled, and so does the
// `changes()` AsyncSequence until the task iterating it is cancelled.
import Foundation
import XCTest
@testable import Waymark

final class ErrorTests: StoreTestCase {
    func testOpeningAStoreWithAnotherKeyThrowsWrongKeyAndLeavesItReadable() async throws {
        let key = randomKey()
        var store: WaymarkStore? = try await openStore(path("phone.db"), key: key)
        let team = try store!.createWorkspace(name: "Team")
        let visitId = try store!.createVisit(workspaceId: team.id, visit: busStationVisit())
        store = nil

        await assertThrows("opening with another key", {
            try await WaymarkStore.open(path: self.path("phone.db").path, key: randomKey())
        }) { $0 == .WrongKey }
        let reopened = try await WaymarkStore.open(path: path("phone.db").path, key: key)
        XCTAssertEqual(try reopened.getVisit(id: visitId).peopleReached, 4)
    }

    func testAKeyOfTheWrongLengthIsInvalidInputNamingTheKey() async throws {
        await assertThrows("a 5-byte key", {
            try await WaymarkStore.open(path: self.path("phone.db").path, key: Data("short".utf8))
        }) {
            if case .InvalidInput(let field, _) = $0 { return field == "key" } else { return false }
        }
    }

    func testABadFieldIsInvalidInputNamingTheFieldAndNothingIsWritten() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        func field(_ error: WaymarkError) -> String? {
            if case .InvalidInput(let field, let reason) = error, !reason.isEmpty { return field }
            return nil
        }
        await assertThrows("an empty place name", {
            try store.createVisit(workspaceId: team.id, visit: busStationVisit(place: Place(name: "", area: "North")))
        }) { field($0) == "place.name" }

        let workshopId = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        await assertThrows("a score of 9", {
            try store.addFeedback(workshopId: workshopId, score: 9, comment: "out of range")
        }) { field($0) == "feedback.score" }
        await assertThrows("an age band that is not a key", {
            try store.checkIn(workshopId: workshopId, attendee: attendee("Ana", ageBand: "Not A Key!"))
        }) { field($0) == "attendee.age_band" }
        XCTAssertEqual(try store.getWorkshop(id: workshopId).attendees, [])
        XCTAssertEqual(try store.getWorkshop(id: workshopId).feedback, [])
    }

    func testAnUnknownIdIsNotFound() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        let notFound: (WaymarkError) -> Bool = {
            if case .NotFound = $0 { return true } else { return false }
        }
        await assertThrows("get an unknown visit", { try store.getVisit(id: unknownId) }, matches: notFound)
        await assertThrows("update an unknown visit", {
            try store.updateVisit(id: unknownId, edits: [.peopleReached(count: 3)])
        }, matches: notFound)
        await assertThrows("a visit in an unknown workspace", {
            try store.createVisit(workspaceId: unknownId, visit: busStationVisit())
        }, matches: notFound)
        let workshopId = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        await assertThrows("a workshop's id read as a visit", { try store.getVisit(id: workshopId) }, matches: notFound)
    }

    func testAGarbageInviteCodeIsInvalidInvite() async throws {
        let store = try await openStore(path("phone.db"))
        for code in ["hello", "WAYMARK1", ""] {
            await assertThrows("joining with \"\(code)\"", { try await store.join(code: code) }) {
                if case .InvalidInvite = $0 { return true } else { return false }
            }
        }
    }

    func testAGarbageBundleIsCorruptAndImportsNothing() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        _ = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        let corrupt: (WaymarkError) -> Bool = {
            if case .Corrupt = $0 { return true } else { return false }
        }
        await assertThrows("importing garbage", {
            try await store.importChanges(bundle: Data("this is not a bundle".utf8))
        }, matches: corrupt)
        await assertThrows("exporting since a garbage checkpoint", {
            try await store.exportChanges(since: Data("nor a checkpoint".utf8))
        }, matches: corrupt)
        XCTAssertEqual(try store.search(query: "recruiter", limit: 10).count, 1)
    }

    func testAnInternalErrorIsAWaymarkErrorWithAMessageAndTheProcessGoesOn() async throws {
        await assertThrows("a forced internal error", { try debugForceInternalError() }) {
            if case .Internal(let reason) = $0 { return reason.contains("forced internal error") }
            return false
        }
        await assertThrows("a forced internal error, async", { try await debugForceInternalErrorAsync() }) {
            if case .Internal = $0 { return true } else { return false }
        }
        // The error's description is the Rust message, for logs and alerts.
        XCTAssertFalse(WaymarkError.InviteUsed.description.isEmpty)

        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Still working")
        let visitId = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        XCTAssertEqual(try store.getVisit(id: visitId).peopleReached, 4)
    }

    func testChangeListenersHearEachWriteUntilTheirHandleIsCancelled() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        let heard = ChangeRecorder()
        let handle = store.addChangeListener(listener: heard)

        let visitId = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        try store.setVisitNotes(id: visitId, text: "Edited.")
        let workshopId = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        _ = try store.checkIn(workshopId: workshopId, attendee: attendee("María"))
        try store.addToTally(workshopId: workshopId, ageBand: "18_24", gender: "female", delta: 1)
        XCTAssertEqual(heard.snapshot(), [[visitId], [visitId], [workshopId], [workshopId], [workshopId]])

        // A failed write changes nothing and is not announced.
        await assertThrows("a score of 0", { try store.addFeedback(workshopId: workshopId, score: 0, comment: "") }) {
            if case .InvalidInput = $0 { return true } else { return false }
        }
        XCTAssertEqual(heard.snapshot().count, 5)

        handle.cancel()
        handle.cancel() // idempotent
        try store.deleteRecord(id: visitId)
        XCTAssertEqual(heard.snapshot().count, 5)
    }

    func testTheChangesSequenceYieldsEachEditUntilItsTaskIsCancelled() async throws {
        let store = try await openStore(path("phone.db"))
        let team = try store.createWorkspace(name: "Team")
        let before = ChangeStreamListener.live

        // The listener is registered when changes() returns, before anything iterates it.
        let changes = store.changes()
        XCTAssertEqual(ChangeStreamListener.live, before + 1)
        let heard = ChangeRecorder()
        let listening = Task {
            for await ids in changes { heard.onChange(recordIds: ids) }
        }
        let visitId = try store.createVisit(workspaceId: team.id, visit: busStationVisit())
        try store.setVisitNotes(id: visitId, text: "Edited.")
        try await waitUntil("both edits came through") { heard.snapshot().count >= 2 }
        XCTAssertEqual(heard.snapshot(), [[visitId], [visitId]])

        // Cancelling the task ends the loop and cancels the listener's handle: the library lets
        // go of the listener, and later writes reach no one.
        listening.cancel()
        await listening.value
        try await waitUntil("the listener was released") { ChangeStreamListener.live == before }
        try store.setVisitNotes(id: visitId, text: "Edited again.")
        XCTAssertEqual(heard.snapshot(), [[visitId], [visitId]])

        // A detail screen's sequence yields for its record, and lets go when it is dropped.
        do {
            let detail = store.changes(of: visitId)
            var next = detail.makeAsyncIterator()
            _ = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
            try store.updateVisit(id: visitId, edits: [.peopleReached(count: 5)])
            let heardOnce: Void? = await next.next()
            XCTAssertNotNil(heardOnce)
        }
        try await waitUntil("the detail's listener was released") { ChangeStreamListener.live == before }
    }
}
