// A coordinator's figures through the generated Kotlin: counts computed here from the records the
// test made. Mirrors bindings/python/tests/test_report.py.
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.Count
import uniffi.waymark.ExportOptions
import uniffi.waymark.ReportFilter
import uniffi.waymark.Sensitivity

class ReportTest {
    @TempDir
    lateinit var tmp: Path

    private fun counts(cs: List<Count>) = cs.associate { it.key to it.count }

    @Test
    fun `a report counts visits, people, referrals, follow-ups and attendance`() = runBlocking<Unit> {
        openStore(tmp.resolve("coordinator.db")).use { store ->
            val team = store.createWorkspace("North district outreach")
            val visits = listOf(busStationVisit(), marketVisit(), busStationVisit().copy(peopleReached = 2u))
            visits.forEach { store.createVisit(team.id, it) }
            val shop = store.createWorkshop(team.id, schoolWorkshop())
            store.checkIn(shop, attendee("Ana"))
            store.withdrawAttendee(shop, store.checkIn(shop, attendee("Luis", gender = "male")))
            repeat(4) { store.addToTally(shop, "12_17", "male", 1) }
            store.addFeedback(shop, 4u, "Clear")

            val report = store.report(ReportFilter(today = "2026-11-10"))
            assertEquals(visits.size.toLong(), report.visits.visits)
            assertEquals(visits.sumOf { it.peopleReached.toLong() }, report.visits.peopleReached)
            assertEquals(mapOf("North" to 2L, "South" to 1L), counts(report.visits.byArea))
            assertEquals(mapOf("shelter" to 2L), counts(report.visits.referralsByKind))
            assertEquals(2L, report.visits.followUpsOverdue)
            assertEquals(5L, report.workshops.attendance)
            assertEquals(mapOf("female" to 1L, "male" to 4L), counts(report.workshops.byGender))
            assertEquals(4.0, report.workshops.feedbackAverage)
            assertEquals(listOf("2026-11"), report.months.map { it.month })

            store.createVisit(team.id, marketVisit().copy(sensitivity = Sensitivity.RESTRICTED))
            val summary = store.exportCsv(tmp.resolve("csv").toString(), ExportOptions(filter = ReportFilter()))
            assertEquals(3uL, summary.visits)
            assertEquals(1uL, summary.restrictedLeftOut)
        }
    }
}
