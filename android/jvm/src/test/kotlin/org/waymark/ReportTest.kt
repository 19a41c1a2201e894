// A coordinator's figures and exports through the generated Kotlin: counts computed here from the
// records the test made, and exports (CSV and XLSX) of what a phone synced leave restricted
// records out unless asked for. Mirrors bindings/python/tests/test_report.py.
package org.waymark

import java.nio.file.Files
import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.Count
import uniffi.waymark.ExportOptions
import uniffi.waymark.Place
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

    @Test
    fun `a coordinator's exports of what a phone synced leave restricted records out unless asked`() =
        runBlocking<Unit> {
            Server(tmp.resolve("server-data")).use { server ->
                openStore(tmp.resolve("coordinator.db"), name = "Coordinator").use { coordinator ->
                    val team = coordinator.createWorkspace("North district outreach")
                    coordinator.connectWorkspace(team.id, server.url, server.workspaceAndToken().second)
                    coordinator.sync()
                    joinTeam(coordinator, team.id, tmp.resolve("ana.db"), "Ana").use { ana ->
                        ana.createVisit(team.id, busStationVisit())
                        ana.createVisit(
                            team.id,
                            marketVisit().copy(place = Place(name = "Safe house 3", area = "South"), sensitivity = Sensitivity.RESTRICTED),
                        )
                        ana.sync()
                        coordinator.sync()

                        // The report can follow one worker's records.
                        val byAna = coordinator.report(ReportFilter(worker = ana.actor()))
                        assertEquals(2L, byAna.visits.visits)
                        assertEquals(0L, coordinator.report(ReportFilter(worker = coordinator.actor())).visits.visits)
                    }

                    val csv = tmp.resolve("csv")
                    var summary = coordinator.exportCsv(csv.toString(), ExportOptions(filter = ReportFilter()))
                    assertEquals(1uL to 1uL, summary.visits to summary.restrictedLeftOut)
                    assertTrue("visits.csv" in summary.tables && "report_summary.csv" in summary.tables, summary.tables.toString())
                    assertEquals(listOf("Central bus station, north gate"), column(csv.resolve("visits.csv"), "place"))

                    val everything = tmp.resolve("all")
                    summary = coordinator.exportCsv(everything.toString(), ExportOptions(filter = ReportFilter(), includeRestricted = true))
                    assertEquals(2uL to 0uL, summary.visits to summary.restrictedLeftOut)
                    assertEquals(
                        listOf("Central bus station, north gate", "Safe house 3"),
                        column(everything.resolve("visits.csv"), "place").sorted(),
                    )

                    val book = tmp.resolve("team.xlsx")
                    summary = coordinator.exportXlsx(book.toString(), ExportOptions(filter = ReportFilter()))
                    assertEquals(listOf("visits", "referrals", "workshops"), summary.tables.take(3))
                    assertEquals(1uL, summary.restrictedLeftOut)
                    assertEquals("PK", String(Files.readAllBytes(book).copyOfRange(0, 2)))
                }
            }
        }

    /** The values of the column [name] of the CSV file [file] (RFC 4180 quoting), row by row. */
    private fun column(file: Path, name: String): List<String> {
        val rows = mutableListOf<MutableList<String>>()
        var row = mutableListOf<String>()
        val cell = StringBuilder()
        var quoted = false
        val text = Files.readString(file)
        var i = 0
        while (i < text.length) {
            val c = text[i]
            when {
                quoted && c == '"' && text.getOrNull(i + 1) == '"' -> { cell.append('"'); i++ }
                c == '"' -> quoted = !quoted
                !quoted && c == ',' -> { row += cell.toString(); cell.clear() }
                !quoted && c == '\n' -> { row += cell.toString().removeSuffix("\r"); cell.clear(); rows += row; row = mutableListOf() }
                else -> cell.append(c)
            }
            i++
        }
        if (cell.isNotEmpty() || row.isNotEmpty()) rows += (row + cell.toString()).toMutableList()
        val at = rows.first().indexOf(name)
        assertTrue(at >= 0, "no column $name in ${rows.first()}")
        return rows.drop(1).map { it[at] }
    }
}
