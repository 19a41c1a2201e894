// AsyncSequence helpers over the generated `WaymarkStore`: change notifications and sync progress
// for Swift concurrency, as android/waymark's WaymarkFlows.kt gives Kotlin `Flow`s.
//
// Platform-neutral (Foundation only): compiled for iOS and macOS, and tested on Linux.
//
//     for await ids in store.changes() {
//         if ids.isEmpty || ids.contains(shownId) { reload() }
//     }
//
//     for try await event in store.syncWithProgress() {
//         switch event {
//         case .progress(let p): bar.progress = Double(p.blobsDone) / Double(max(p.blobsTotal, 1))
//         case .done(let report): show(report)
//         }
//     }
import Foundation

extension WaymarkStore {
    /// The ids of the records that change in this store, one array per write, sync or import (an
    /// empty array when a sync changed too many records to list: refresh everything).
    ///
    /// A `ChangeListener` is registered at once and unregistered (its `ChangeListenerHandle`
    /// cancelled) when the sequence ends: when the task iterating it is cancelled, when the loop
    /// leaves it (`break`, `first(where:)`), or when the stream is released. Nothing is dropped:
    /// a slow consumer gets every batch, in order. Values are delivered to the iterating task,
    /// not on the thread that made the change.
    ///
    /// Register before the change you wait for: the stream hears only changes made after this
    /// call returns.
    public func changes() -> AsyncStream<[String]> {
        AsyncStream(bufferingPolicy: .unbounded) { continuation in
            let handle = addChangeListener(listener: ChangeStreamListener(continuation))
            continuation.onTermination = { _ in handle.cancel() }
        }
    }

    /// Yields once each time the record `id` changes, or a sync may have changed any record
    /// (for a detail screen); ends as `changes()` does.
    public func changes(of id: String) -> AsyncStream<Void> {
        let all = changes()
        return AsyncStream(bufferingPolicy: .unbounded) { continuation in
            let forward = Task {
                for await ids in all where ids.isEmpty || ids.contains(id) {
                    continuation.yield(())
                }
                continuation.finish()
            }
            // Ending this stream cancels the forwarding task, which ends `all` and its listener.
            continuation.onTermination = { _ in forward.cancel() }
        }
    }

    /// Runs one `sync(listener:cancel:)` and yields its progress (`.progress`, after every
    /// request, for a progress bar), then its report (`.done`); the sequence finishes after
    /// `.done`.
    ///
    /// A failure is thrown to the iterating task as the `WaymarkError` the sync threw
    /// (`.Network`, `.DeviceRevoked`, ...). Ending the sequence early (cancelling the iterating
    /// task, or leaving the loop) stops the sync at its next request, through a
    /// `CancellationToken`; what completed before stays committed and the next sync resumes from
    /// there.
    public func syncWithProgress() -> AsyncThrowingStream<SyncEvent, Error> {
        AsyncThrowingStream(bufferingPolicy: .unbounded) { continuation in
            let token = CancellationToken()
            let listener = SyncProgressStreamListener(continuation)
            let running = Task {
                do {
                    let report = try await self.sync(listener: listener, cancel: token)
                    continuation.yield(.done(report))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { termination in
                if case .cancelled = termination {
                    token.cancel()
                    running.cancel()
                }
            }
        }
    }
}

/// What `WaymarkStore.syncWithProgress()` yields: progress while the sync runs, then its report.
public enum SyncEvent: Sendable {
    /// Progress so far in one workspace and phase.
    case progress(SyncProgress)
    /// The sync finished; the sequence finishes after this.
    case done(SyncReport)
}

/// Forwards every change to an `AsyncStream`; registered by `WaymarkStore.changes()`.
final class ChangeStreamListener: ChangeListener, @unchecked Sendable {
    private let continuation: AsyncStream<[String]>.Continuation

    /// How many of these the library holds (registered and not yet released): a test can see
    /// that ending a `changes()` sequence unregistered its listener.
    static var live: Int { counter.value }
    private static let counter = Counter()

    init(_ continuation: AsyncStream<[String]>.Continuation) {
        self.continuation = continuation
        Self.counter.add(1)
    }

    deinit { Self.counter.add(-1) }

    func onChange(recordIds: [String]) {
        continuation.yield(recordIds)
    }
}

/// A count shared between threads.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    var value: Int {
        lock.lock(); defer { lock.unlock() }
        return count
    }

    func add(_ delta: Int) {
        lock.lock(); defer { lock.unlock() }
        count += delta
    }
}

/// Forwards every progress report to an `AsyncThrowingStream`; used by `syncWithProgress()`.
final class SyncProgressStreamListener: SyncProgressListener, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<SyncEvent, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<SyncEvent, Error>.Continuation) {
        self.continuation = continuation
    }

    func onProgress(progress: SyncProgress) {
        continuation.yield(.progress(progress))
    }
}
