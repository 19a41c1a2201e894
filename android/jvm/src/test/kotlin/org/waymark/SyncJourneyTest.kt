// Two phones of a team syncing through a real `waymark-server` process, with suspend calls:
// records, settings and translations, conflicts and their resolution, progress and cancelling.
// Mirrors bindings/python/tests/test_sync.py (and the settings and conflict journeys of
// test_recording.py, here through the server).
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.CancellationToken
import uniffi.waymark.FieldValue
import uniffi.waymark.SettingsEdit
import uniffi.waymark.SyncPhase
import uniffi.waymark.SyncProgress
import uniffi.waymark.SyncProgressListener
import uniffi.waymark.TaxonomyLabel
import uniffi.waymark.VisitEdit
import uniffi.waymark.VisitFilter
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.Workspace
import uniffi.waymark.WorkshopFilter

class SyncJourneyTest {
    @TempDir
    lateinit var tmp: Path
    private lateinit var server: Server
    private val stores = mutableListOf<WaymarkStore>()

    @BeforeEach
    fun startServer() {
        server = Server(tmp.resolve("server-data"))
    }

    @AfterEach
    fun stopServer() {
        stores.forEach { it.close() }
        server.stop()
    }

    private suspend fun open(name: String, deviceName: String? = null) =
        openStore(tmp.resolve(name), name = deviceName).also { stores += it }

    /** Ana's phone with a workspace on the server, and Luis's phone joined by invite. */
    private suspend fun connectedPair(): Triple<WaymarkStore, WaymarkStore, Workspace> {
        val ana = open("ana.db", "Ana")
        val luis = open("luis.db", "Luis")
        val team = ana.createWorkspace("North district outreach")
        val (_, token) = server.workspaceAndToken()
        ana.connectWorkspace(team.id, server.url, token)
        val code = ana.createInvite(team.id, 3600u)
        val joined = luis.join(code)
        assertEquals(team.id to "North district outreach", joined.id to joined.name)
        return Triple(ana, luis, team)
    }

    @Test
    fun `two phones editing one note offline both keep their words after sync`() = runBlocking<Unit> {
        val (ana, luis, team) = connectedPair()
        val visitId = ana.createVisit(team.id, busStationVisit(notes = "Two men waiting."))
        val workshopId = ana.createWorkshop(team.id, schoolWorkshop())
        ana.checkIn(workshopId, attendee("María"))
        assertTrue(ana.sync().pushed > 0u)
        val pulled = luis.sync()
        assertTrue(visitId in pulled.changed && workshopId in pulled.changed, pulled.toString())
        assertEquals("Two men waiting.", luis.getVisit(visitId).notes)

        // Offline, both add to the same note.
        ana.setVisitNotes(visitId, "Two men waiting. One holds no passport.")
        luis.setVisitNotes(visitId, "Two men waiting by gate 3.")
        luis.checkIn(workshopId, attendee("Jorge", gender = "male"))
        repeat(2) {
            ana.sync()
            luis.sync()
        }

        for (store in listOf(ana, luis)) {
            val notes = store.getVisit(visitId).notes
            assertTrue("One holds no passport." in notes && "by gate 3" in notes, notes)
        }
        assertEquals(ana.getVisit(visitId), luis.getVisit(visitId))
        assertEquals(ana.listVisits(VisitFilter()), luis.listVisits(VisitFilter()))
        assertEquals(ana.listWorkshops(WorkshopFilter()), luis.listWorkshops(WorkshopFilter()))
        assertEquals(2L, ana.attendance(workshopId).named)
        assertEquals(0uL, ana.pendingChanges(team.id))
        assertEquals(emptyList(), ana.setAsideBlobs())
    }

    @Test
    fun `settings and translations reach the other phone, and a conflict is resolved with its history`() =
        runBlocking<Unit> {
            val (ana, luis, team) = connectedPair()
            ana.updateSettings(
                team.id,
                listOf(
                    SettingsEdit.AddEntry(
                        taxonomy = "visit_types",
                        key = "market_outreach",
                        labels = listOf(TaxonomyLabel(lang = "en", text = "Market outreach")),
                    ),
                    SettingsEdit.SetLabel(taxonomy = "visit_types", key = "market_outreach", lang = "es", text = "Alcance en mercados"),
                    SettingsEdit.SetLabel(taxonomy = "visit_types", key = "home_visit", lang = "fr", text = "Visite à domicile"),
                    SettingsEdit.Archive(taxonomy = "visit_types", key = "online_outreach", archived = true),
                    SettingsEdit.Rename(name = "North team"),
                ),
            )
            val visitId = ana.createVisit(team.id, busStationVisit())
            ana.sync()
            luis.sync()

            val settings = luis.settings(team.id)
            assertEquals("North team", settings.name)
            assertEquals(listOf("North team"), luis.workspaces().map { it.name })
            val visitTypes = settings.taxonomies.first { it.name == "visit_types" }.entries.associateBy { it.key }
            assertEquals(
                listOf(TaxonomyLabel("en", "Market outreach"), TaxonomyLabel("es", "Alcance en mercados")),
                visitTypes.getValue("market_outreach").labels,
            )
            assertTrue(TaxonomyLabel("fr", "Visite à domicile") in visitTypes.getValue("home_visit").labels)
            assertTrue(visitTypes.getValue("online_outreach").archived)
            assertEquals(ana.settings(team.id).taxonomies, settings.taxonomies)

            // Offline, both correct the head count to different numbers; the sync keeps both.
            ana.updateVisit(visitId, listOf(VisitEdit.PeopleReached(count = 5u)))
            luis.updateVisit(visitId, listOf(VisitEdit.PeopleReached(count = 7u)))
            repeat(2) {
                ana.sync()
                luis.sync()
            }
            for (store in listOf(ana, luis)) {
                assertTrue(store.getVisit(visitId).hasConflicts)
                val conflict = store.conflicts(visitId).single()
                assertEquals("people_reached", conflict.field)
                assertEquals(listOf(5L, 7L), conflict.values.map { (it.value as FieldValue.Int).value }.sorted())
                assertEquals(setOf(ana.actor(), luis.actor()), conflict.values.map { it.author.actor }.toSet())
            }

            ana.resolveConflict(visitId, "people_reached", FieldValue.Int(value = 7))
            ana.sync()
            luis.sync()
            for (store in listOf(ana, luis)) {
                assertEquals(emptyList(), store.conflicts(visitId))
                assertEquals(7u, store.getVisit(visitId).peopleReached)
            }
            val history = luis.history(visitId)
            assertTrue(history.size >= 3, history.toString())
            assertTrue("people_reached" in history.last().fields, history.toString())
            assertEquals(setOf(ana.actor(), luis.actor()), history.map { it.author.actor }.toSet())
        }

    @Test
    fun `the changes flow emits the ids a sync brought`() = runBlocking<Unit> {
        val (ana, luis, team) = connectedPair()
        val visitId = ana.createVisit(team.id, busStationVisit())
        ana.sync()

        val heard = mutableListOf<List<String>>()
        // Unconfined: the listener is registered before launch returns.
        val collector = launch(Dispatchers.Unconfined) { luis.changes().collect { heard += it } }
        val report = luis.sync()
        withTimeout(10_000) { while (heard.none { visitId in it }) delay(10) }
        assertTrue(report.changed.toSet().all { id -> heard.any { id in it } }, "$heard vs ${report.changed}")
        collector.cancel()
    }

    @Test
    fun `sync reports progress while it pushes and pulls, also as a flow`() = runBlocking<Unit> {
        val (ana, luis, team) = connectedPair()
        repeat(5) { i -> ana.createVisit(team.id, busStationVisit(notes = "Visit number $i.")) }

        val pushing = mutableListOf<SyncProgress>()
        val report = ana.sync(
            listener = object : SyncProgressListener {
                override fun onProgress(progress: SyncProgress) {
                    synchronized(pushing) { pushing += progress }
                }
            },
        )
        val push = synchronized(pushing) { pushing.filter { it.phase == SyncPhase.PUSH } }
        assertTrue(push.isNotEmpty(), "progress was reported while pushing")
        assertEquals(report.pushed, push.last().blobsDone)
        assertTrue(push.all { it.workspaceId == team.id && it.blobsDone <= it.blobsTotal })

        val events = luis.syncWithProgress().toList()
        val done = events.last() as SyncEvent.Done
        val pull = events.filterIsInstance<SyncEvent.Progress>().map { it.progress }.filter { it.phase == SyncPhase.PULL }
        assertTrue(pull.isNotEmpty() && done.report.pulled > 0u)
        assertEquals(done.report.pulled, pull.last().blobsDone)
        assertTrue(pull.last().bytesDone > 0u)
    }

    @Test
    fun `a cancelled sync throws Cancelled and the next sync completes`() = runBlocking<Unit> {
        val (ana, luis, team) = connectedPair()
        val visitId = ana.createVisit(team.id, busStationVisit())
        ana.sync()

        val already = CancellationToken()
        already.cancel()
        assertTrue(already.isCancelled())
        assertFailsWith<WaymarkException.Cancelled> { luis.sync(cancel = already) }

        // Cancelled from the progress callback: stops at the next request.
        val token = CancellationToken()
        val cancelling = object : SyncProgressListener {
            override fun onProgress(progress: SyncProgress) = token.cancel()
        }
        assertFailsWith<WaymarkException.Cancelled> { luis.sync(listener = cancelling, cancel = token) }

        luis.sync()
        assertEquals(ana.getVisit(visitId).notes, luis.getVisit(visitId).notes)
    }

    @Test
    fun `collecting only the first progress event cancels the sync, and the next sync completes`() =
        runBlocking<Unit> {
            val (ana, luis, team) = connectedPair()
            repeat(20) { i -> ana.createVisit(team.id, busStationVisit(notes = "Visit number $i.")) }
            ana.sync()

            val first = luis.syncWithProgress().first()
            assertTrue(first is SyncEvent.Progress, first.toString())
            val done = luis.syncWithProgress().toList().last() as SyncEvent.Done
            assertEquals(ana.listVisits(VisitFilter()), luis.listVisits(VisitFilter()), done.toString())
        }

    @Test
    fun `a long sync leaves the caller's thread free`() = runBlocking<Unit> {
        val (ana, _, team) = connectedPair()
        repeat(100) { i -> ana.createVisit(team.id, busStationVisit(notes = "Visit number $i.")) }

        // runBlocking has one thread: the ticker only runs if sync() suspends instead of blocking.
        val ticks = mutableListOf<Long>()
        val ticker = launch { while (true) { ticks += System.nanoTime(); delay(1) } }
        delay(10)
        val started = System.nanoTime()
        val report = ana.sync()
        val took = System.nanoTime() - started
        ticker.cancel()
        val during = ticks.filter { it >= started }
        val longestPause = during.zipWithNext { a, b -> b - a }.maxOrNull() ?: took
        assertTrue(report.pushed > 0u)
        assertTrue(
            during.size >= 3 && longestPause < took * 0.8,
            "sync took ${took / 1e6} ms, ${during.size} ticks, longest pause ${longestPause / 1e6} ms",
        )
    }

    @Test
    fun `an invite cannot be used twice`() = runBlocking<Unit> {
        val (ana, _, team) = connectedPair()
        val code = ana.createInvite(team.id, 3600u)
        open("other.db").join(code)
        val third = open("third.db")
        assertFailsWith<WaymarkException.InviteUsed> { third.join(code) }
    }

    @Test
    fun `an unreachable server is a Network error and nothing is lost`() = runBlocking<Unit> {
        val (ana, _, team) = connectedPair()
        val visitId = ana.createVisit(team.id, busStationVisit())
        server.stop()
        assertFailsWith<WaymarkException.Network> { ana.sync() }
        assertTrue(ana.pendingChanges(team.id) > 0u)
        assertEquals(4u, ana.getVisit(visitId).peopleReached)
    }
}
