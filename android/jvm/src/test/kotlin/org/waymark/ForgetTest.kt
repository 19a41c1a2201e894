// Forgetting from an app's point of view: a name typed into a note and redacted, a record
// erased, an attendee who asked to be removed: gone from every phone, history included.
// Mirrors bindings/python/tests/test_forget.py.
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.NewAttendee
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.Workspace

private const val NAME = "Zainab Okonkwo-Quadri"

class ForgetTest {
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

    /** The coordinator's phone with a workspace, and Ana's phone admitted to it. */
    private suspend fun pair(): Triple<WaymarkStore, WaymarkStore, Workspace> {
        val coordinator = openStore(tmp.resolve("coordinator.db"), name = "Coordinator").also { stores += it }
        val team = coordinator.createWorkspace("North district outreach")
        val (_, token) = server.workspaceAndToken()
        coordinator.connectWorkspace(team.id, server.url, token)
        coordinator.sync()
        val ana = joinTeam(coordinator, team.id, tmp.resolve("ana.db"), "Ana").also { stores += it }
        return Triple(coordinator, ana, team)
    }

    @Test
    fun `a redacted name and an erased record are gone from every phone`() = runBlocking<Unit> {
        val (coordinator, ana, team) = pair()
        val typed = ana.createVisit(team.id, busStationVisit(notes = "Met $NAME at gate 3."))
        val doomed = ana.createVisit(team.id, busStationVisit(notes = "Her brother's address."))
        ana.sync()
        coordinator.sync()
        assertTrue(coordinator.search(NAME, 10u).isNotEmpty(), "the name reached the coordinator first")

        ana.setVisitNotes(typed, "Met a young woman at gate 3.")
        ana.redactRecord(typed, "notes")
        ana.eraseRecord(doomed)
        ana.sync()
        coordinator.sync()

        for (phone in listOf(ana, coordinator)) {
            val who = phone.deviceName()
            assertEquals("Met a young woman at gate 3.", phone.getVisit(typed).notes, who)
            assertEquals(1, phone.history(typed).size, "$who keeps no earlier version of the notes")
            assertEquals(emptyList(), phone.search(NAME, 10u), who)
            assertEquals(emptyList(), phone.search("brother", 10u), who)
            val erased = phone.getVisit(doomed)
            assertTrue(erased.deleted, who)
            assertEquals("", erased.notes, who)
        }
        assertFailsWith<WaymarkException.InvalidInput>("redacted a field records do not have") {
            ana.redactRecord(typed, "password")
        }
    }

    @Test
    fun `an attendee who asks to be removed leaves no name or contact`() = runBlocking<Unit> {
        val (coordinator, ana, team) = pair()
        val workshop = ana.createWorkshop(team.id, schoolWorkshop())
        val maria = ana.checkIn(
            workshop,
            NewAttendee(name = "María Lopez", ageBand = "18_24", gender = "female", contact = "+52 555 0101", consent = true),
        )
        ana.checkIn(workshop, attendee("Jorge"))
        ana.sync()
        coordinator.sync()

        ana.removeAttendeeData(workshop, maria)
        ana.sync()
        coordinator.sync()
        for (phone in listOf(ana, coordinator)) {
            val who = phone.deviceName()
            val people = phone.getWorkshop(workshop).attendees.associateBy { it.id }
            val removed = people.getValue(maria)
            assertTrue(removed.withdrawn, who)
            assertEquals("", removed.name, who)
            assertNull(removed.contact, who)
            assertEquals(listOf("Jorge"), people.values.filter { !it.withdrawn }.map { it.name }, who)
            assertEquals(emptyList(), phone.search("Lopez", 10u), who)
            assertEquals(1, phone.history(workshop).size, "$who keeps no earlier version of the workshop")
        }
    }
}
