// Background sync for iOS: a BGTaskScheduler processing task that syncs when the system lets the
// app run with a network, and an NWPathMonitor that syncs as soon as the network comes back while
// the app is running. Compiled only where BackgroundTasks exists (not on Linux or macOS).
//
// In the app:
//   Info.plist: BGTaskSchedulerPermittedIdentifiers = [BackgroundSync.defaultTaskIdentifier]
//               UIBackgroundModes = [processing]
//   application(_:didFinishLaunchingWithOptions:), before it returns (the store may open later):
//       backgroundSync = BackgroundSync { try await AppStore.shared.store() }
//       backgroundSync.register()
//       backgroundSync.schedule()
//       backgroundSync.startMonitoring()
#if canImport(BackgroundTasks) && canImport(Network)
import BackgroundTasks
import Foundation
import Network

@available(iOS 13.0, tvOS 13.0, *)
public final class BackgroundSync: @unchecked Sendable {
    public static let defaultTaskIdentifier = "org.waymark.sync"

    private let store: @Sendable () async throws -> WaymarkStore
    private let taskIdentifier: String
    private let interval: TimeInterval
    private let onReport: (@Sendable (Result<SyncReport, Error>) -> Void)?
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "org.waymark.background-sync")
    private var wasOnline = false          // guarded by `queue`
    private var running: Task<Void, Never>? // guarded by `queue`

    /// `store`: gives the open store when a sync is due (opening it if needed: `register()` must
    /// run during launch, possibly before the store is open).
    /// `interval`: the earliest time before the next background sync is due.
    /// `onReport`: hears every sync's outcome (on an arbitrary thread), e.g. to refresh a badge.
    public init(
        taskIdentifier: String = BackgroundSync.defaultTaskIdentifier,
        interval: TimeInterval = 15 * 60,
        onReport: (@Sendable (Result<SyncReport, Error>) -> Void)? = nil,
        store: @escaping @Sendable () async throws -> WaymarkStore
    ) {
        self.store = store
        self.taskIdentifier = taskIdentifier
        self.interval = interval
        self.onReport = onReport
    }

    /// For an app that already holds the open store.
    public convenience init(
        store: WaymarkStore,
        taskIdentifier: String = BackgroundSync.defaultTaskIdentifier,
        interval: TimeInterval = 15 * 60,
        onReport: (@Sendable (Result<SyncReport, Error>) -> Void)? = nil
    ) {
        self.init(taskIdentifier: taskIdentifier, interval: interval, onReport: onReport) { store }
    }

    /// Registers the task handler. Call once, before application(_:didFinishLaunchingWithOptions:) returns.
    public func register() {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: taskIdentifier, using: nil) { [weak self] task in
            guard let self, let task = task as? BGProcessingTask else {
                task.setTaskCompleted(success: false)
                return
            }
            self.run(task)
        }
    }

    /// Asks the system for the next background sync, at the earliest `interval` from now, with a network.
    public func schedule() {
        let request = BGProcessingTaskRequest(identifier: taskIdentifier)
        request.requiresNetworkConnectivity = true
        request.requiresExternalPower = false
        request.earliestBeginDate = Date(timeIntervalSinceNow: interval)
        do {
            try BGTaskScheduler.shared.submit(request)
        } catch {
            // Unavailable in the simulator and when background refresh is off: the path monitor
            // and foreground syncs still run.
        }
    }

    /// Syncs whenever the network goes from unusable to usable while the app runs.
    public func startMonitoring() {
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self else { return }
            let online = path.status == .satisfied
            if online && !self.wasOnline { self.syncNow() }
            self.wasOnline = online
        }
        monitor.start(queue: queue)
    }

    public func stopMonitoring() {
        monitor.cancel()
    }

    /// Starts a sync unless one is already running (the store serialises syncs anyway).
    public func syncNow() {
        queue.async {
            guard self.running == nil else { return }
            self.running = Task {
                let result = await self.syncOnce(cancel: nil)
                self.onReport?(result)
                self.queue.async { self.running = nil }
            }
        }
    }

    private func syncOnce(cancel: CancellationToken?) async -> Result<SyncReport, Error> {
        do {
            let store = try await self.store()
            return .success(try await store.sync(listener: nil, cancel: cancel))
        } catch {
            return .failure(error)
        }
    }

    private func run(_ task: BGProcessingTask) {
        schedule() // the next one, whatever happens to this one
        let cancel = CancellationToken()
        let work = Task {
            let result = await self.syncOnce(cancel: cancel)
            self.onReport?(result)
            // Failed (cancelled by the system's deadline, offline): nothing is lost, the next one retries.
            if case .success = result {
                task.setTaskCompleted(success: true)
            } else {
                task.setTaskCompleted(success: false)
            }
        }
        task.expirationHandler = {
            cancel.cancel()
            work.cancel()
        }
    }
}
#endif
