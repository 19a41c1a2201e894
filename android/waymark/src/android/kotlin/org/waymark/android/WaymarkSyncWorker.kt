// Android only: background sync with WorkManager.
package org.waymark.android

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import androidx.work.workDataOf
import java.util.concurrent.TimeUnit
import uniffi.waymark.SyncProgress
import uniffi.waymark.SyncProgressListener
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore

/**
 * Implemented by the app's `Application`: the one open store of the process (open it once,
 * e.g. lazily with the key from [KeystoreKey], and share it).
 */
interface WaymarkStoreProvider {
    suspend fun waymarkStore(): WaymarkStore
}

/**
 * Calls [WaymarkStore.sync] in the background, only while a network is connected, retrying
 * with exponential backoff when the server cannot be reached.
 *
 * Schedule it with [WaymarkSync.schedule] (periodic) and [WaymarkSync.syncNow] (after a local
 * edit, or a pull-to-refresh). Progress is published as work progress (`blobs_done`,
 * `blobs_total`, `phase`) for a progress bar.
 */
class WaymarkSyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val provider = applicationContext as? WaymarkStoreProvider
            ?: return Result.failure(workDataOf("error" to "the Application does not implement WaymarkStoreProvider"))
        return try {
            val report = provider.waymarkStore().sync(
                listener = object : SyncProgressListener {
                    override fun onProgress(progress: SyncProgress) {
                        // Fire and forget: setProgressAsync does not block the sync thread.
                        setProgressAsync(
                            workDataOf(
                                "workspace_id" to progress.workspaceId,
                                "phase" to progress.phase.name,
                                "blobs_done" to progress.blobsDone.toLong(),
                                "blobs_total" to progress.blobsTotal.toLong(),
                            ),
                        )
                    }
                },
            )
            Result.success(workDataOf("pushed" to report.pushed.toLong(), "pulled" to report.pulled.toLong()))
        } catch (e: WaymarkException.Network) {
            Result.retry() // server unreachable: nothing lost, try again with backoff
        } catch (e: WaymarkException.Cancelled) {
            Result.retry() // stopped by WorkManager (constraints lost): resume next time
        } catch (e: WaymarkException.DeviceRevoked) {
            Result.failure(workDataOf("error" to "device_revoked"))
        } catch (e: WaymarkException.DeviceUnknown) {
            // Not a revocation (a server restored from a backup made before this phone
            // enrolled, a proxy dropping the header): nothing was deleted. Retrying is right;
            // if it persists the app asks the user to have the coordinator re-enrol the phone.
            Result.retry()
        } catch (e: WaymarkException.HostileServer) {
            // The server contradicts the team's signed history: tell the user and the
            // coordinator (storeProvider's teamStatus says what was seen); retrying later is
            // right, since sync resumes once the server shows the real history.
            Result.failure(workDataOf("error" to "hostile_server"))
        } catch (e: WaymarkException) {
            Result.failure(workDataOf("error" to e.toString()))
        }
    }
}

/** Enqueues [WaymarkSyncWorker] as unique work. */
object WaymarkSync {
    const val PERIODIC = "waymark-sync-periodic"
    const val ONE_OFF = "waymark-sync-now"

    private val connected = Constraints.Builder()
        .setRequiredNetworkType(NetworkType.CONNECTED)
        .build()

    /** Syncs every [hours] hours while connected (call at app start; keeps an existing schedule). */
    fun schedule(context: Context, hours: Long = 1) {
        val request = PeriodicWorkRequestBuilder<WaymarkSyncWorker>(hours, TimeUnit.HOURS)
            .setConstraints(connected)
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
            .build()
        WorkManager.getInstance(context)
            .enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.KEEP, request)
    }

    /** Syncs once as soon as a network is connected (one pending request at a time). */
    fun syncNow(context: Context) {
        val request = OneTimeWorkRequestBuilder<WaymarkSyncWorker>()
            .setConstraints(connected)
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
            .build()
        WorkManager.getInstance(context)
            .enqueueUniqueWork(ONE_OFF, ExistingWorkPolicy.KEEP, request)
    }
}
