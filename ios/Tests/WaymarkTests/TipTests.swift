// Anonymous tips from an app's point of view: a coordinator sets up the tip page; a tip sent
// through it (by the tipster's side of the bindings, which seals exactly as the page does)
// reaches the coordinator at sync as a restricted record, searchable, and never a member's
// phone; the coordinator replies and the tipster reads the reply with the receipt code; the tip
// becomes a visit. The server's files keep none of the words. Mirrors the first test of
// bindings/python/tests/test_tips.py.
import Foundation
import XCTest
@testable import Waymark

final class TipTests: ServerTestCase {
    /// Every byte of every file under `directory`.
    func allBytes(_ directory: URL) throws -> Data {
        var all = Data()
        let files = try XCTUnwrap(FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]))
        for case let file as URL in files {
            if try file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
                all.append(try Data(contentsOf: file))
            }
        }
        return all
    }

    func testATipReachesTheCoordinatorWhoRepliesAndTurnsItIntoAVisit() async throws {
        let coordinator = try await openStore(path("coordinator.db"), name: "Coordinator")
        let team = try coordinator.createWorkspace(name: "North district outreach")
        let (_, token) = try server.workspaceAndToken()
        try await coordinator.connectWorkspace(workspaceId: team.id, serverUrl: server.url, enrollmentToken: token)
        _ = try await coordinator.sync()
        let amina = try await joinTeam(coordinator, team.id, path("amina.db"), name: "Amina")

        await assertThrows("a member setting up the tip page", {
            try amina.setTipPage(workspaceId: team.id, languages: [], newAddress: false)
        }) {
            if case .NotPermitted = $0 { return true } else { return false }
        }
        let page = try coordinator.setTipPage(workspaceId: team.id, languages: [], newAddress: false)
        XCTAssertTrue(page.url.hasPrefix(server.url + "/t/"), page.url)
        XCTAssertFalse(page.published)
        // The workspace's languages (its labels are in English and Spanish), with built-in words.
        XCTAssertEqual(page.languages.map(\.code), ["en", "es"])
        XCTAssertEqual(page.languages.last?.send, "Enviar")
        _ = try await coordinator.sync()
        XCTAssertEqual(try coordinator.tipPage(workspaceId: team.id)?.published, true)

        let code = try await sendTip(
            pageUrl: page.url,
            fields: TipFields(
                what: "Three teenagers sleeping in the back of the Jade garment workshop",
                place: "Industrial road 9",
                time: "Every night this week",
                contact: "",
                language: "en"))
        XCTAssertEqual(code.replacingOccurrences(of: "-", with: "").count, 20, code)

        _ = try await coordinator.sync()
        let tips = try coordinator.tips(workspaceId: team.id)
        XCTAssertEqual(tips.count, 1)
        let tip = try XCTUnwrap(tips.first)
        XCTAssertTrue(tip.what.hasPrefix("Three teenagers"), tip.what)
        XCTAssertEqual(tip.place, "Industrial road 9")
        XCTAssertEqual(tip.time, "Every night this week")
        XCTAssertEqual(tip.language, "en")
        let hits = try coordinator.search(query: "Jade garment", limit: 10)
        XCTAssertEqual(hits.map(\.id), [tip.id])
        XCTAssertEqual(hits.first?.kind, .tip)
        XCTAssertEqual(hits.first?.sensitivity, .restricted)
        _ = try await amina.sync()
        XCTAssertEqual(try amina.tips(workspaceId: team.id), [])
        XCTAssertEqual(try amina.search(query: "Jade garment", limit: 10), [])

        let noneYet = try await readTipReplies(pageUrl: page.url, code: code)
        XCTAssertEqual(noneYet, [])
        _ = try coordinator.replyToTip(tipId: tip.id, text: "Thank you. A team will go there tomorrow.")
        _ = try await coordinator.sync()
        let answers = try await readTipReplies(pageUrl: page.url, code: code)
        XCTAssertEqual(answers.map(\.text), ["Thank you. A team will go there tomorrow."])
        // Another code reads nothing: replies open only with the receipt they were sealed to.
        let wrongCode = try await readTipReplies(pageUrl: page.url, code: "aaaaa-bbbbb-ccccc-ddddd")
        XCTAssertEqual(wrongCode, [])

        let visitId = try coordinator.tipToVisit(tipId: tip.id, visit: busStationVisit(notes: "From an anonymous tip"))
        XCTAssertEqual(try coordinator.getTip(id: tip.id).visitId, visitId)
        XCTAssertEqual(try coordinator.getVisit(id: visitId).notes, "From an anonymous tip")

        let stored = try allBytes(server.dataDir)
        XCTAssertFalse(stored.isEmpty, "nothing read from the server's files")
        for words in ["Jade garment", "Industrial road", "go there tomorrow"] {
            XCTAssertNil(stored.range(of: Data(words.utf8)), "the server's files hold \"\(words)\"")
        }
    }
}
