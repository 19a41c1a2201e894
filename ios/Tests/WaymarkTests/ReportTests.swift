// A coordinator's figures and exports through the generated Swift: counts computed here from the
// records the test made, and exports (CSV and XLSX) of what a phone synced leave restricted
// records out unless asked for. Mirrors bindings/python/tests/test_report.py.
import Foundation
import XCTest
@testable import Waymark

final class ReportTests: ServerTestCase {
    func counts(_ cs: [Count]) -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: cs.map { ($0.key, $0.count) })
    }

    func testAReportCountsVisitsPeopleReferralsFollowUpsAndAttendance() async throws {
        let store = try await openStore(path("coordinator.db"))
        let team = try store.createWorkspace(name: "North district outreach")
        var small = busStationVisit()
        small.peopleReached = 2
        let visits = [busStationVisit(), marketVisit(), small]
        for visit in visits { _ = try store.createVisit(workspaceId: team.id, visit: visit) }
        let shop = try store.createWorkshop(workspaceId: team.id, workshop: schoolWorkshop())
        _ = try store.checkIn(workshopId: shop, attendee: attendee("Ana"))
        let luis = try store.checkIn(workshopId: shop, attendee: attendee("Luis", gender: "male"))
        try store.withdrawAttendee(workshopId: shop, attendeeId: luis)
        for _ in 0..<4 { try store.addToTally(workshopId: shop, ageBand: "12_17", gender: "male", delta: 1) }
        _ = try store.addFeedback(workshopId: shop, score: 4, comment: "Clear")

        let report = try store.report(filter: ReportFilter(today: "2026-11-10"))
        XCTAssertEqual(report.visits.visits, Int64(visits.count))
        XCTAssertEqual(report.visits.peopleReached, visits.reduce(0) { $0 + Int64($1.peopleReached) })
        XCTAssertEqual(counts(report.visits.byArea), ["North": 2, "South": 1])
        XCTAssertEqual(counts(report.visits.referralsByKind), ["shelter": 2])
        XCTAssertEqual(report.visits.followUpsOverdue, 2)
        XCTAssertEqual(report.workshops.attendance, 5)
        XCTAssertEqual(counts(report.workshops.byGender), ["female": 1, "male": 4])
        XCTAssertEqual(report.workshops.feedbackAverage, 4.0)
        XCTAssertEqual(report.months.map(\.month), ["2026-11"])

        // A period and an area narrow every figure; an empty period is refused.
        let northNov = try store.report(filter: ReportFilter(since: nov1 - 9 * hour, area: "North", today: "2026-11-01"))
        XCTAssertEqual(northNov.visits.visits, 2)
        XCTAssertEqual(northNov.visits.followUpsOverdue, 0)
        await assertThrows("a report of an empty period", {
            try store.report(filter: ReportFilter(since: nov1, until: nov1))
        }) { if case .InvalidInput(let field, _) = $0 { return field == "to" } else { return false } }
    }

    func testACoordinatorsExportsOfWhatAPhoneSyncedLeaveRestrictedRecordsOutUnlessAsked() async throws {
        let coordinator = try await openStore(path("coordinator.db"), name: "Coordinator")
        let team = try coordinator.createWorkspace(name: "North district outreach")
        try await coordinator.connectWorkspace(
            workspaceId: team.id, serverUrl: server.url, enrollmentToken: try server.workspaceAndToken().1)
        _ = try await coordinator.sync()
        let ana = try await joinTeam(coordinator, team.id, path("ana.db"), name: "Ana")
        _ = try ana.createVisit(workspaceId: team.id, visit: busStationVisit())
        var safeHouse = marketVisit()
        safeHouse.place = Place(name: "Safe house 3", area: "South")
        safeHouse.sensitivity = .restricted
        _ = try ana.createVisit(workspaceId: team.id, visit: safeHouse)
        _ = try await ana.sync()
        _ = try await coordinator.sync()

        // The report can follow one worker's records.
        XCTAssertEqual(try coordinator.report(filter: ReportFilter(worker: ana.actor())).visits.visits, 2)
        XCTAssertEqual(try coordinator.report(filter: ReportFilter(worker: coordinator.actor())).visits.visits, 0)

        let csv = path("csv")
        var summary = try await coordinator.exportCsv(dir: csv.path, options: ExportOptions(filter: ReportFilter()))
        XCTAssertEqual(summary.visits, 1)
        XCTAssertEqual(summary.restrictedLeftOut, 1)
        XCTAssertTrue(summary.tables.contains("visits.csv") && summary.tables.contains("report_summary.csv"), "\(summary.tables)")
        XCTAssertEqual(try column(csv.appendingPathComponent("visits.csv"), "place"), ["Central bus station, north gate"])

        let everything = path("all")
        summary = try await coordinator.exportCsv(
            dir: everything.path, options: ExportOptions(filter: ReportFilter(), includeRestricted: true))
        XCTAssertEqual(summary.visits, 2)
        XCTAssertEqual(summary.restrictedLeftOut, 0)
        XCTAssertEqual(
            try column(everything.appendingPathComponent("visits.csv"), "place").sorted(),
            ["Central bus station, north gate", "Safe house 3"])

        let book = path("team.xlsx")
        summary = try await coordinator.exportXlsx(path: book.path, options: ExportOptions(filter: ReportFilter()))
        XCTAssertEqual(Array(summary.tables.prefix(3)), ["visits", "referrals", "workshops"])
        XCTAssertEqual(summary.restrictedLeftOut, 1)
        XCTAssertEqual(Array(try Data(contentsOf: book).prefix(2)), Array("PK".utf8))
    }

    /// The values of the column `name` of the CSV file `file` (RFC 4180 quoting), row by row.
    func column(_ file: URL, _ name: String) throws -> [String] {
        var rows: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        var chars = Array(try String(contentsOf: file, encoding: .utf8).unicodeScalars)[...]
        while let c = chars.popFirst() {
            switch c {
            case "\"" where quoted && chars.first == "\"":
                cell.unicodeScalars.append(c)
                chars.removeFirst()
            case "\"":
                quoted.toggle()
            case "," where !quoted:
                row.append(cell)
                cell = ""
            case "\n" where !quoted:
                row.append(cell.hasSuffix("\r") ? String(cell.dropLast()) : cell)
                cell = ""
                rows.append(row)
                row = []
            default:
                cell.unicodeScalars.append(c)
            }
        }
        if !cell.isEmpty || !row.isEmpty { rows.append(row + [cell]) }
        let header = try XCTUnwrap(rows.first)
        let at = try XCTUnwrap(header.firstIndex(of: name), "no column \(name) in \(header)")
        return rows.dropFirst().map { $0[at] }
    }
}
