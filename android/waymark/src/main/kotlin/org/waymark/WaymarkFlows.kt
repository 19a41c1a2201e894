// Coroutine helpers over the generated `uniffi.waymark` bindings.
//
// Platform-neutral: this file uses only kotlinx.coroutines and the generated API, so the same
// source is compiled into the Android library and tested on the JVM (android/jvm).
package org.waymark

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.channelFlow
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.withContext
import uniffi.waymark.CancellationToken
import uniffi.waymark.ChangeListener
import uniffi.waymark.SyncProgress
import uniffi.waymark.SyncProgressListener
import uniffi.waymark.SyncReport
import uniffi.waymark.WaymarkStore

/**
 * The ids of the records that change in this store, one list per write, sync or import (an
 * empty list when a sync changed too many records to list: refresh everything).
 *
 * A [ChangeListener] is registered when collection starts and unregistered (its handle
 * cancelled and released) when collection stops. Nothing is dropped: a slow collector gets
 * every batch, in order. Values arrive on the collector's dispatcher, not on the thread that
 * made the change.
 *
 * ```
 * store.changes().collect { ids -> if (ids.isEmpty() || shownId in ids) reload() }
 * ```
 */
fun WaymarkStore.changes(): Flow<List<String>> =
    callbackFlow {
        val handle = addChangeListener(
            object : ChangeListener {
                override fun onChange(recordIds: List<String>) {
                    // The channel is unbounded (see buffer below): this never fails while open.
                    trySend(recordIds)
                }
            },
        )
        awaitClose {
            handle.cancel()
            handle.close()
        }
    }.buffer(Channel.UNLIMITED)

/** Emits `Unit` each time the record [id] changes (for a detail screen). */
fun WaymarkStore.changesOf(id: String): Flow<Unit> =
    changes().filter { id in it }.map { }

/** What [syncWithProgress] emits: progress while the sync runs, then its report. */
sealed class SyncEvent {
    /** Progress so far in one workspace and phase, for a progress bar. */
    data class Progress(val progress: SyncProgress) : SyncEvent()

    /** The sync finished; the flow completes after this. */
    data class Done(val report: SyncReport) : SyncEvent()
}

/**
 * Runs one [WaymarkStore.sync] and emits its progress, then [SyncEvent.Done].
 *
 * Cancelling the collector stops the sync at its next request (through a
 * [CancellationToken]); a failure is thrown to the collector as the `WaymarkException` the
 * sync threw (`Network`, `DeviceRevoked`, ...).
 */
fun WaymarkStore.syncWithProgress(): Flow<SyncEvent> =
    channelFlow {
        val token = CancellationToken()
        try {
            val report = sync(
                listener = object : SyncProgressListener {
                    override fun onProgress(progress: SyncProgress) {
                        trySend(SyncEvent.Progress(progress))
                    }
                },
                cancel = token,
            )
            send(SyncEvent.Done(report))
        } finally {
            token.cancel()
            token.close()
        }
    }.buffer(Channel.UNLIMITED)

/**
 * Runs the store's blocking calls (create, update, get, list, search: one SQLite transaction
 * each) on [Dispatchers.IO], so a UI coroutine can call them directly:
 *
 * ```
 * val visits = store.io { listVisits(VisitFilter(area = "North")) }
 * ```
 */
suspend fun <T> WaymarkStore.io(block: WaymarkStore.() -> T): T =
    withContext(Dispatchers.IO) { block() }
