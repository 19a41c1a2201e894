// Staff safety check-ins from an app's point of view: past its time the server raises the
// alarm (the operator's hook runs, the coordinator sees it overdue with the details to look
// for the worker); a close with the duress PIN raises it too, while the worker's own phone
// shows a safe close. Mirrors bindings/python/tests/test_check_ins.py.
package org.waymark

import java.nio.file.Files
import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.CheckIn
import uniffi.waymark.CheckInDetails
import uniffi.waymark.CheckInState
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.Workspace

class CheckInTest {
    @TempDir
    lateinit var tmp: Path
    private lateinit var server: Server
    private lateinit var alerts: Path
    private val stores = mutableListOf<WaymarkStore>()

    /** A server that finds check-ins overdue one second past their deadline, with a hook that
     * appends "kind workspace device minutes check-in" to [alerts]. */
    @BeforeEach
    fun startServer() {
        alerts = tmp.resolve("alerts.txt")
        val hook = tmp.resolve("alert.sh")
        Files.writeString(hook, "#!/bin/sh\necho \"\$WAYMARK_ALERT_KIND \$1 \$2 \$3 \$WAYMARK_CHECK_IN\" >> '$alerts'\n")
        hook.toFile().setExecutable(true)
        server = Server(tmp.resolve("server-data"), "--check-in-grace", "1s", "--alert-command", hook.toString())
    }

    @AfterEach
    fun stopServer() {
        stores.forEach { it.close() }
        server.stop()
    }

    private var serverWorkspace = ""

    private suspend fun pair(): Triple<WaymarkStore, WaymarkStore, Workspace> {
        val coordinator = openStore(tmp.resolve("coordinator.db"), name = "Coordinator").also { stores += it }
        val team = coordinator.createWorkspace("North district outreach")
        val (ws, token) = server.workspaceAndToken()
        serverWorkspace = ws
        coordinator.connectWorkspace(team.id, server.url, token)
        coordinator.sync()
        val amina = joinTeam(coordinator, team.id, tmp.resolve("amina.db"), "Amina").also { stores += it }
        return Triple(coordinator, amina, team)
    }

    private fun waitForAlerts(n: Int): List<String> {
        val until = System.currentTimeMillis() + 30_000
        while (true) {
            val lines = if (Files.exists(alerts)) Files.readAllLines(alerts) else emptyList()
            if (lines.size >= n) return lines
            check(System.currentTimeMillis() < until) { "the alert hook did not run: $lines" }
            Thread.sleep(100)
        }
    }

    private fun WaymarkStore.find(workspaceId: String, id: String): CheckIn = checkIns(workspaceId).first { it.id == id }

    @Test
    fun `an overdue check-in reaches the coordinator and the hook`() = runBlocking<Unit> {
        val (coordinator, amina, team) = pair()
        val details = CheckInDetails(place = "Golden Lotus karaoke", withWhom = "Joseph", note = "Back room")
        val started = amina.startCheckIn(team.id, System.currentTimeMillis() + 1_500, details)
        assertTrue(started.watched && started.own)
        assertEquals(CheckInState.OPEN, started.state)

        coordinator.sync()
        val seen = coordinator.find(team.id, started.id)
        assertEquals(CheckInState.OPEN, seen.state)
        assertEquals(details, seen.details)
        assertEquals("Amina", seen.deviceName)

        assertEquals(listOf("overdue $serverWorkspace Amina 0 ${started.id}"), waitForAlerts(1))
        coordinator.sync()
        val overdue = coordinator.find(team.id, started.id)
        assertEquals(CheckInState.OVERDUE, overdue.state)
        assertEquals("Golden Lotus karaoke", overdue.details.place)
    }

    @Test
    fun `a duress close looks safe on the phone and raises the alarm`() = runBlocking<Unit> {
        val (coordinator, amina, team) = pair()
        amina.setDuressPin("4711")
        val hour = System.currentTimeMillis() + 3_600_000
        val safe = amina.closeCheckIn(amina.startCheckIn(team.id, hour, CheckInDetails(place = "Market")).id, "1234")
        val forced = amina.closeCheckIn(amina.startCheckIn(team.id, hour, CheckInDetails(place = "Port")).id, "4711")
        assertEquals(CheckInState.CLOSED, safe.state)
        assertEquals(CheckInState.CLOSED, forced.state)
        assertEquals(listOf(CheckInState.CLOSED, CheckInState.CLOSED), amina.checkIns(team.id).map { it.state })

        assertEquals(listOf("alarm $serverWorkspace Amina 0 ${forced.id}"), waitForAlerts(1))
        coordinator.sync()
        assertEquals(CheckInState.ALARM, coordinator.find(team.id, forced.id).state)
        assertEquals(CheckInState.CLOSED, coordinator.find(team.id, safe.id).state)
        assertFailsWith<WaymarkException.InvalidInput>("a closed check-in was extended") {
            amina.extendCheckIn(forced.id, hour)
        }
    }
}
