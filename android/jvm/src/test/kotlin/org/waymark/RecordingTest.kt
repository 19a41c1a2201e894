// An outreach team's day on one phone, offline, through the generated Kotlin bindings.
// Mirrors bindings/python/tests/test_recording.py.
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.FollowUpFilter
import uniffi.waymark.RecordKind
import uniffi.waymark.ReferralStatus
import uniffi.waymark.VisitEdit
import uniffi.waymark.VisitFilter
import uniffi.waymark.WorkshopEdit
import uniffi.waymark.WorkshopFilter

class RecordingTest {
    @TempDir
    lateinit var tmp: Path

    @Test
    fun `a recorded visit reads back exactly as typed and survives reopening`() = runBlocking<Unit> {
        val key = ByteArray(32) { 7 }
        val path = tmp.resolve("phone.db")
        val visit = openStore(path, key).use { store ->
            val team = store.createWorkspace("North district outreach")
            val visitId = store.createVisit(team.id, busStationVisit())
            val visit = store.getVisit(visitId)
            assertEquals(team.id, visit.workspaceId)
            assertEquals("Central bus station, north gate", visit.place.name)
            assertEquals(4u, visit.peopleReached)
            assertEquals(listOf("deception"), visit.indicators)
            assertEquals(
                listOf(Triple("shelter", "Casa Esperanza", ReferralStatus.MADE)),
                visit.referrals.map { Triple(it.kind, it.to, it.status) },
            )
            assertTrue(visit.followUp.needed)
            assertEquals("2026-11-08", visit.followUp.due)
            assertEquals("Two young men waiting for a recruiter.", visit.notes)
            assertFalse(visit.deleted || visit.hasConflicts)
            visit
        }
        openStore(path, key).use { reopened ->
            assertEquals(visit, reopened.getVisit(visit.id))
            assertEquals(listOf("North district outreach"), reopened.workspaces().map { it.name })
        }
    }

    @Test
    fun `visits are listed newest first and filtered by area, indicator and follow-up`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Team")
            val station = store.createVisit(team.id, busStationVisit())
            val market = store.createVisit(team.id, marketVisit())
            fun ids(f: VisitFilter) = store.listVisits(f).map { it.id }

            assertEquals(listOf(market, station), ids(VisitFilter()))
            assertEquals(listOf(station), ids(VisitFilter(area = "North")))
            assertEquals(listOf(market), ids(VisitFilter(indicator = "isolation")))
            assertEquals(listOf(market), ids(VisitFilter(since = NOV_1 + HOUR)))
            assertEquals(listOf(station), ids(VisitFilter(until = NOV_1 + HOUR)))
            assertEquals(listOf(station), ids(VisitFilter(followUp = FollowUpFilter.Open)))
            assertEquals(listOf(station), ids(VisitFilter(followUp = FollowUpFilter.OverdueOn(date = "2026-11-09"))))

            store.updateVisit(station, listOf(VisitEdit.FollowUpDone(done = true), VisitEdit.AddTag(tag = "night")))
            assertEquals(emptyList(), ids(VisitFilter(followUp = FollowUpFilter.Open)))
            assertEquals(listOf("night"), store.getVisit(station).tags)

            store.deleteRecord(market)
            assertEquals(listOf(station), ids(VisitFilter()))
            assertEquals(setOf(station, market), ids(VisitFilter(includeDeleted = true)).toSet())
            assertTrue(store.getVisit(market).deleted)
        }
    }

    @Test
    fun `a workshop counts named attendees and anonymous tallies`() = runBlocking<Unit> {
        openStore(tmp.resolve("tablet.db")).use { store ->
            val team = store.createWorkspace("Team")
            val wsId = store.createWorkshop(team.id, schoolWorkshop())
            val maria = store.checkIn(wsId, attendee("María"))
            store.checkIn(wsId, attendee("Jorge", gender = "male"))
            store.checkIn(wsId, attendee("Lucía"))
            store.withdrawAttendee(wsId, maria)
            repeat(3) { store.addToTally(wsId, "18_24", "female", 1) }
            store.addToTally(wsId, "18_24", "male", 2)
            val feedback = store.addFeedback(wsId, 5u, "Very useful, now I know what to check in an offer.")
            store.updateWorkshop(wsId, listOf(WorkshopEdit.DurationMinutes(minutes = 100u)))

            val a = store.attendance(wsId)
            assertEquals(listOf(2L, 1L, 5L, 7L), listOf(a.named, a.withdrawn, a.anonymous, a.total))
            assertEquals(setOf("female" to 4L, "male" to 3L), a.byGender.map { it.key to it.count }.toSet())

            val workshop = store.getWorkshop(wsId)
            assertEquals(100u, workshop.durationMinutes)
            assertEquals(listOf("Ana", "Luis"), workshop.facilitators)
            assertEquals(listOf("María", "Jorge", "Lucía"), workshop.attendees.map { it.name })
            assertEquals(listOf(true, false, false), workshop.attendees.map { it.withdrawn })
            assertEquals(listOf(feedback to 5.toUByte()), workshop.feedback.map { it.id to it.score })

            val listed = store.listWorkshops(WorkshopFilter(topic = "safe_migration"))
            assertEquals(listOf(wsId to 7L), listed.map { it.id to it.attendance })
            assertEquals(emptyList(), store.listWorkshops(WorkshopFilter(area = "South")))
        }
    }

    @Test
    fun `search finds notes, titles and feedback and says what kind of record`() = runBlocking<Unit> {
        openStore(tmp.resolve("phone.db")).use { store ->
            val team = store.createWorkspace("Team")
            val visitId = store.createVisit(team.id, marketVisit())
            val wsId = store.createWorkshop(team.id, schoolWorkshop())

            val hits = store.search("passports", 10u)
            assertEquals(listOf(visitId to RecordKind.VISIT), hits.map { it.id to it.kind })
            assertTrue("[passports]" in hits[0].snippet, hits[0].snippet)
            assertEquals(listOf(wsId), store.search("san rafael", 10u).map { it.id })
            assertEquals(emptyList(), store.search("nothing-like-this", 10u))
        }
    }
}
