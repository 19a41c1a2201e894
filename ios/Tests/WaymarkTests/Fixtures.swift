// What the tests share: temporary folders, stores, typical records, a real waymark-server process
// and a hostile server in front of it.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking // URLSession on Linux
#endif
import XCTest
@testable import Waymark

// 2026-11-01T09:00:00Z in ms.
let nov1: Int64 = 1_793_523_600_000
let hour: Int64 = 3_600_000
let unknownId = "0123456789abcdef0123456789abcdef"

func randomKey() -> Data {
    Data((0..<32).map { _ in UInt8.random(in: 0...255) })
}

/// Opens a store at `path` (a fresh random key unless given), optionally naming the device.
func openStore(_ path: URL, key: Data? = nil, name: String? = nil) async throws -> WaymarkStore {
    let store = try await WaymarkStore.open(path: path.path, key: key ?? randomKey())
    if let name { try store.setDeviceName(name: name) }
    return store
}

/// A phone that joins with an in-person invite of `coordinator` and is admitted into the team
/// log: it reads at once, but its own changes go out only once the coordinator's next sync has
/// admitted it, which its own next sync then learns.
func joinTeam(_ coordinator: WaymarkStore, _ workspaceId: String, _ path: URL, name: String) async throws -> WaymarkStore {
    let phone = try await openStore(path, name: name)
    _ = try await phone.join(code: try await coordinator.createInvite(workspaceId: workspaceId, ttlSeconds: 600))
    _ = try await phone.sync()
    _ = try await coordinator.sync()
    _ = try await phone.sync()
    return phone
}

func busStationVisit(notes: String = "Two young men waiting for a recruiter.", place: Place? = nil) -> NewVisit {
    NewVisit(
        place: place ?? Place(name: "Central bus station, north gate", area: "North"),
        occurredAt: nov1,
        visitType: "transit_point",
        peopleReached: 4,
        indicators: ["deception"],
        referrals: [NewReferral(kind: "shelter", to: "Casa Esperanza", status: .made)],
        followUp: FollowUp(needed: true, due: "2026-11-08"),
        sensitivity: .normal,
        notes: notes
    )
}

func marketVisit() -> NewVisit {
    NewVisit(
        place: Place(name: "Fish market loading bay", area: "South"),
        occurredAt: nov1 + 2 * hour,
        visitType: "worksite_visit",
        peopleReached: 11,
        indicators: ["retention_of_documents", "isolation"],
        sensitivity: .normal,
        notes: "Workers say their passports are kept by the foreman."
    )
}

func schoolWorkshop() -> NewWorkshop {
    NewWorkshop(
        title: "Safe migration at San Rafael school",
        topic: "safe_migration",
        occurredAt: nov1 + 24 * hour,
        durationMinutes: 90,
        venue: "San Rafael secondary school",
        area: "North",
        audience: "students",
        language: "es",
        facilitators: ["Ana", "Luis"],
        sensitivity: .normal,
        notes: "Students asked many questions about job offers online."
    )
}

func attendee(_ name: String, ageBand: String = "12_17", gender: String = "female") -> NewAttendee {
    NewAttendee(name: name, ageBand: ageBand, gender: gender)
}

/// Runs `body` and fails unless it throws a WaymarkError that `matches` accepts.
func assertThrows<T>(
    _ what: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T, matches: (WaymarkError) -> Bool
) async {
    do {
        _ = try await body()
        XCTFail("\(what): nothing was thrown", file: file, line: line)
    } catch let error as WaymarkError {
        XCTAssertTrue(matches(error), "\(what): threw \(error)", file: file, line: line)
    } catch {
        XCTFail("\(what): threw a non-Waymark error \(error)", file: file, line: line)
    }
}

/// Waits (polling every 10 ms) until `condition` holds; fails the test after `timeout` seconds.
func waitUntil(
    _ what: String, timeout: TimeInterval = 10, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        if Date() > deadline {
            return XCTFail("timed out waiting until \(what)", file: file, line: line)
        }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}

/// A change listener that remembers which ids it was told about.
final class ChangeRecorder: ChangeListener, @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [[String]] = []

    func onChange(recordIds: [String]) {
        lock.lock(); defer { lock.unlock() }
        calls.append(recordIds)
    }

    func snapshot() -> [[String]] {
        lock.lock(); defer { lock.unlock() }
        return calls
    }

    func ids() -> [String] { snapshot().flatMap { $0 } }
}

/// A sync progress listener that remembers every report; can cancel a sync on the first one.
final class ProgressRecorder: SyncProgressListener, @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [SyncProgress] = []
    private let cancelWith: CancellationToken?

    init(cancelWith: CancellationToken? = nil) { self.cancelWith = cancelWith }

    func onProgress(progress: SyncProgress) {
        lock.lock()
        reports.append(progress)
        lock.unlock()
        cancelWith?.cancel()
    }

    func snapshot() -> [SyncProgress] {
        lock.lock(); defer { lock.unlock() }
        return reports
    }
}

/// A test case with a fresh temporary folder, removed afterwards.
class StoreTestCase: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("waymark-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> URL { dir.appendingPathComponent(name) }
}

/// A test case with a temporary folder and a real `waymark-server` process in it.
class ServerTestCase: StoreTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        try super.setUpWithError()
        server = try TestServer(dataDir: path("server-data"))
    }

    override func tearDownWithError() throws {
        server?.stop()
        server = nil
        try super.tearDownWithError()
    }
}

/// The binary named by the environment variable `name` (set by scripts/test-linux.sh).
func binaryFromEnvironment(_ name: String, builtBy command: String) throws -> String {
    guard let bin = ProcessInfo.processInfo.environment[name],
          FileManager.default.isExecutableFile(atPath: bin)
    else {
        throw NSError(domain: "TestServer", code: 0, userInfo: [
            NSLocalizedDescriptionKey: "set \(name) to the binary (\(command); scripts/test-linux.sh does this)",
        ])
    }
    return bin
}

/// Starts a server process and returns it with the URL it prints (`listening on URL`); its
/// output is drained from then on, so that it never blocks on a full pipe.
func startListening(_ binary: String, _ arguments: [String]) throws -> (Process, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()

    let reader = out.fileHandleForReading
    var buffer = Data()
    var lines = 0
    var url = ""
    search: while lines < 20 {
        let chunk = reader.availableData // blocks until output or end of file
        if chunk.isEmpty { break }
        buffer.append(chunk)
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex...newline)
            lines += 1
            if line.hasPrefix("listening on http://") {
                url = String(line.dropFirst("listening on ".count))
                    .trimmingCharacters(in: .whitespaces)
                break search
            }
        }
    }
    if url.isEmpty {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        throw NSError(domain: "TestServer", code: 1, userInfo: [
            NSLocalizedDescriptionKey: "\(URL(fileURLWithPath: binary).lastPathComponent) did not say where it listens",
        ])
    }
    Thread.detachNewThread {
        while !reader.availableData.isEmpty {}
    }
    return (process, url)
}

/// A real `waymark-server` process on a free loopback port, with its admin commands.
/// The binary is $WAYMARK_SERVER_BIN (set by scripts/test-linux.sh).
final class TestServer {
    let dataDir: URL
    let binary: String
    private(set) var process: Process
    let url: String

    init(dataDir: URL, serveArgs: [String] = []) throws {
        binary = try binaryFromEnvironment("WAYMARK_SERVER_BIN", builtBy: "cargo build -p waymark-server")
        self.dataDir = dataDir
        (process, url) = try startListening(
            binary, ["--data-dir", dataDir.path, "serve", "--listen", "127.0.0.1:0"] + serveArgs)
    }

    /// Runs `waymark-server --data-dir D --json ARGS...` and returns its JSON answer.
    func admin(_ args: String...) throws -> [String: Any] {
        let cmd = Process()
        cmd.executableURL = URL(fileURLWithPath: binary)
        cmd.arguments = ["--data-dir", dataDir.path, "--json"] + args
        let out = Pipe()
        cmd.standardOutput = out
        try cmd.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        cmd.waitUntilExit()
        guard cmd.terminationStatus == 0,
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw NSError(domain: "TestServer", code: 2, userInfo: [
                NSLocalizedDescriptionKey: "waymark-server \(args) failed: \(String(decoding: data, as: UTF8.self))",
            ])
        }
        return json
    }

    /// A workspace on the server and a one-hour enrollment token for it.
    func workspaceAndToken() throws -> (String, String) {
        let ws = try XCTUnwrap(admin("workspace", "create", "--name", "North district")["id"] as? String)
        let token = try XCTUnwrap(
            admin("token", "issue", "--workspace", ws, "--ttl", "1h")["token"] as? String)
        return (ws, token)
    }

    /// A backup at `to` (which must not exist), as the README tells the operator to take one.
    func backup(to: URL) throws {
        _ = try admin("backup", "--to", to.path)
    }

    /// Stops the server, puts the backup `from` back with `restore` and serves again at the same
    /// address: phones keep the URL they joined with.
    func restore(from: URL) throws {
        stop()
        _ = try admin("restore", "--from", from.path)
        let listen = String(url.dropFirst("http://".count))
        // The port was only just freed: the new process may be refused it for a moment.
        for _ in 0..<50 {
            if let started = try? startListening(
                binary, ["--data-dir", dataDir.path, "serve", "--listen", listen]).0 {
                process = started
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw NSError(domain: "TestServer", code: 3, userInfo: [
            NSLocalizedDescriptionKey: "the server did not come back on \(listen)",
        ])
    }

    func stop() {
        if process.isRunning {
            // SIGKILL, not terminate(): a server restarted from an async test (`restore`) blocks
            // SIGTERM, as HostileTestServer.stop explains.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A `hostile-server` process relaying to `upstream`, rewriting its answers as a breached server
/// would once told to (`attack`). Devices must join through its `url` from the start: a
/// membership keeps the URL it was made with. The binary is $WAYMARK_HOSTILE_BIN.
final class HostileTestServer {
    let process: Process
    let url: String

    init(upstream: TestServer) throws {
        let binary = try binaryFromEnvironment(
            "WAYMARK_HOSTILE_BIN", builtBy: "cargo build -p waymark-e2e --bin hostile-server")
        (process, url) = try startListening(binary, ["--upstream", upstream.url])
    }

    /// Switches to the attack `name` (`forge-log`, `withhold-last-entry`, `swap-box-keys`), or
    /// back to relaying faithfully (`none`).
    func attack(_ name: String) async throws {
        let control = try XCTUnwrap(URL(string: "\(url)/_hostile/attack?name=\(name)"))
        let status: Int? = try await withCheckedThrowingContinuation { done in
            URLSession.shared.dataTask(with: control) { _, response, error in
                if let error { done.resume(throwing: error) } else {
                    done.resume(returning: (response as? HTTPURLResponse)?.statusCode)
                }
            }.resume()
        }
        XCTAssertEqual(status, 200, "the hostile server refused the attack \(name)")
    }

    func stop() {
        if process.isRunning {
            // SIGKILL, not terminate(): a process started from an async test inherits the signal
            // mask of a dispatch worker thread, which blocks SIGTERM, and would never exit.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
