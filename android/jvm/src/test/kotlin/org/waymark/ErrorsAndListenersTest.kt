// Bad input throws the WaymarkException subclass an app can act on; internal errors never kill
// the JVM; the changes flow hears every write and unregisters when collection stops.
// Mirrors bindings/python/tests/test_errors_and_listeners.py.
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.async
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.InternalException
import uniffi.waymark.Place
import uniffi.waymark.VisitEdit
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.debugForceInternalError
import uniffi.waymark.debugForceInternalErrorAsync
import uniffi.waymark.debugForcePanic

private const val UNKNOWN_ID = "0123456789abcdef0123456789abcdef"

class ErrorsAndListenersTest {
    @TempDir
    lateinit var tmp: Path

    @Test
    fun `opening a store with another key throws WrongKey and leaves it readable`() = runBlocking<Unit> {
        val key = randomKey()
        val path = tmp.resolve("phone.db")
        val visitId = openStore(path, key).use { store ->
            store.createVisit(store.createWorkspace("Team").id, busStationVisit())
        }
        assertFailsWith<WaymarkException.WrongKey> { WaymarkStore.open(path.toString(), randomKey()) }
        WaymarkStore.open(path.toString(), key).use { assertEquals(4u, it.getVisit(visitId).peopleReached) }
    }

    @Test
    fun `a key of the wrong length is InvalidInput naming the key`() = runBlocking<Unit> {
        val e = assertFailsWith<WaymarkException.InvalidInput> {
            WaymarkStore.open(tmp.resolve("phone.db").toString(), "short".toByteArray())
        }
        assertEquals("key", e.field)
    }

    @Test
    fun `a bad field is InvalidInput naming the field and nothing is written`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Team")
            val e = assertFailsWith<WaymarkException.InvalidInput> {
                store.createVisit(team.id, busStationVisit(place = Place(name = "", area = "North")))
            }
            assertEquals("place.name", e.field)
            assertTrue(e.reason.isNotEmpty())

            val workshopId = store.createWorkshop(team.id, schoolWorkshop())
            assertEquals(
                "feedback.score",
                assertFailsWith<WaymarkException.InvalidInput> { store.addFeedback(workshopId, 9u, "out of range") }.field,
            )
            assertEquals(
                "attendee.age_band",
                assertFailsWith<WaymarkException.InvalidInput> {
                    store.checkIn(workshopId, attendee("Ana", ageBand = "Not A Key!"))
                }.field,
            )
            assertEquals(emptyList(), store.getWorkshop(workshopId).attendees)
            assertEquals(emptyList(), store.getWorkshop(workshopId).feedback)
        }
    }

    @Test
    fun `an unknown id is NotFound`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Team")
            assertFailsWith<WaymarkException.NotFound> { store.getVisit(UNKNOWN_ID) }
            assertFailsWith<WaymarkException.NotFound> {
                store.updateVisit(UNKNOWN_ID, listOf(VisitEdit.PeopleReached(count = 3u)))
            }
            assertFailsWith<WaymarkException.NotFound> { store.createVisit(UNKNOWN_ID, busStationVisit()) }
            // A workshop's id does not name a visit.
            val workshopId = store.createWorkshop(team.id, schoolWorkshop())
            assertFailsWith<WaymarkException.NotFound> { store.getVisit(workshopId) }
        }
    }

    @Test
    fun `a garbage invite code is InvalidInvite and a garbage bundle is Corrupt`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            for (code in listOf("hello", "WAYMARK1", "")) {
                assertFailsWith<WaymarkException.InvalidInvite> { store.join(code) }
            }
            val team = store.createWorkspace("Team")
            store.createVisit(team.id, busStationVisit())
            assertFailsWith<WaymarkException.Corrupt> { store.importChanges("this is not a bundle".toByteArray()) }
            assertFailsWith<WaymarkException.Corrupt> { store.exportChanges("nor a checkpoint".toByteArray()) }
            assertEquals(1, store.search("recruiter", 10u).size)
        }
    }

    @Test
    fun `a forced internal error throws Internal and the JVM goes on`() = runBlocking<Unit> {
        val e = assertFailsWith<WaymarkException> { debugForceInternalError() }
        assertTrue(e is WaymarkException.Internal && "forced internal error" in e.reason, e.toString())
        assertTrue("forced internal error" in e.toString(), e.toString())
        assertFailsWith<WaymarkException.Internal> { debugForceInternalErrorAsync() }
        // A panic outside the bindings' guard is still caught by uniffi.
        assertFailsWith<InternalException> { debugForcePanic() }

        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Still working")
            assertEquals(4u, store.getVisit(store.createVisit(team.id, busStationVisit())).peopleReached)
        }
    }

    @Test
    fun `the changes flow emits each write's id and unregisters when collection stops`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Team")
            val five = async(Dispatchers.Unconfined) { store.changes().take(5).toList() }

            val visitId = store.createVisit(team.id, busStationVisit())
            store.setVisitNotes(visitId, "Edited.")
            val workshopId = store.createWorkshop(team.id, schoolWorkshop())
            // A failed write changes nothing and is not announced.
            assertFailsWith<WaymarkException.InvalidInput> { store.addFeedback(workshopId, 0u, "") }
            store.checkIn(workshopId, attendee("María"))
            store.addToTally(workshopId, "18_24", "female", 1)
            val heard = withTimeout(10_000) { five.await() }
            assertEquals(
                listOf(listOf(visitId), listOf(visitId), listOf(workshopId), listOf(workshopId), listOf(workshopId)),
                heard,
            )

            // take(5) ended that collection (and cancelled its listener handle); a new
            // collection registers again and hears the next write.
            val next = async(Dispatchers.Unconfined) { store.changesOf(visitId).first() }
            store.deleteRecord(visitId)
            withTimeout(10_000) { next.await() }
        }
    }

    @Test
    fun `an import announces the records it changed on the flow`() = runBlocking<Unit> {
        openStore(tmp.resolve("ana.db")).use { ana ->
            openStore(tmp.resolve("luis.db")).use { luis ->
                val team = ana.createWorkspace("Team")
                val visitId = ana.createVisit(team.id, busStationVisit())
                luis.join(ana.createInvite(team.id, 3600u))

                val heard = async(Dispatchers.Unconfined) { luis.changes().first { visitId in it } }
                val report = luis.importChanges(ana.exportChanges())
                assertTrue(visitId in report.changed)
                assertEquals(report.changed, withTimeout(10_000) { heard.await() })
            }
        }
    }
}
