// A team's security from an app's point of view: a phone joins with an approval invite once the
// coordinator approves the code it shows, members cannot revoke others, a coordinator's
// revocation rotates the key in the same call, a server that lies about the team is caught, and
// a server restored from a backup loses nothing. Mirrors bindings/python/tests/test_team.py.
package org.waymark

import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.AlertKind
import uniffi.waymark.TeamTrust
import uniffi.waymark.VisitFilter
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.Workspace

class TeamTest {
    @TempDir
    lateinit var tmp: Path
    private lateinit var server: Server
    private var hostile: HostileServer? = null
    private val stores = mutableListOf<WaymarkStore>()

    @BeforeEach
    fun startServer() {
        server = Server(tmp.resolve("server-data"))
    }

    @AfterEach
    fun stopServers() {
        stores.forEach { it.close() }
        hostile?.stop()
        server.stop()
    }

    /**
     * The coordinator's phone with a workspace on the server, reached at [url] for good: a
     * membership keeps the URL it was made with.
     */
    private suspend fun coordinatorWithWorkspace(url: String = server.url): Pair<WaymarkStore, Workspace> {
        val coordinator = openStore(tmp.resolve("coordinator.db"), name = "Coordinator").also { stores += it }
        val team = coordinator.createWorkspace("North district outreach")
        val (_, token) = server.workspaceAndToken()
        coordinator.connectWorkspace(team.id, url, token)
        coordinator.sync()
        return coordinator to team
    }

    private suspend fun join(coordinator: WaymarkStore, team: Workspace, name: String) =
        joinTeam(coordinator, team.id, tmp.resolve("$name.db"), name).also { stores += it }

    /** The notes of every visit [phone] holds, sorted. */
    private fun notes(phone: WaymarkStore): List<String> =
        phone.listVisits(VisitFilter()).map { phone.getVisit(it.id).notes }.sorted()

    @Test
    fun `an approval invite admits a phone once approved, and only a coordinator revokes`() = runBlocking<Unit> {
        val (coordinator, team) = coordinatorWithWorkspace()
        val visitId = coordinator.createVisit(team.id, busStationVisit(notes = "For the team."))
        coordinator.sync()

        // The code carries no key: Luis reads nothing until the coordinator approves him.
        val code = coordinator.createApprovalInvite(team.id, 600u)
        val luis = openStore(tmp.resolve("luis.db"), name = "Luis").also { stores += it }
        luis.join(code)
        val shownOnLuis = luis.verificationCode(team.id)
        assertTrue(Regex("\\d{4} \\d{4} \\d{4}").matches(shownOnLuis), shownOnLuis)
        luis.sync()
        assertFailsWith<WaymarkException.NotFound> { luis.getVisit(visitId) }

        // The coordinator compares the code on both screens, then approves.
        val pending = coordinator.pendingJoins(team.id)
        assertEquals(listOf(Triple("Luis", true, shownOnLuis)), pending.map { Triple(it.name, it.verified, it.verificationCode) })
        coordinator.approveJoin(team.id, pending.single().deviceId)
        luis.sync()
        assertEquals("For the team.", luis.getVisit(visitId).notes)
        assertEquals(emptyList(), coordinator.pendingJoins(team.id))
        val members = coordinator.team(team.id).associateBy { it.name }
        assertTrue(members.getValue("Coordinator").isThisDevice)
        assertEquals("coordinator", members.getValue("Coordinator").role)
        assertEquals("member", members.getValue("Luis").role)
        assertTrue(members.getValue("Luis").verified)

        // A member cannot revoke another phone; the coordinator can, and the phone is refused.
        val ben = join(coordinator, team, "Ben")
        luis.sync()
        val benId = luis.team(team.id).first { it.name == "Ben" }.deviceId
        assertFailsWith<WaymarkException.NotPermitted> { luis.revokeDevice(team.id, benId) }
        coordinator.revokeDevice(team.id, benId)
        assertFailsWith<WaymarkException.DeviceRevoked> { ben.sync() }
        val later = coordinator.createVisit(team.id, busStationVisit(notes = "After Ben left."))
        coordinator.sync()
        luis.sync()
        assertEquals("After Ben left.", luis.getVisit(later).notes)
        assertTrue(luis.team(team.id).first { it.name == "Ben" }.revoked)
    }

    @Test
    fun `a coordinator revokes a phone and rotates the key in one call`() = runBlocking<Unit> {
        val (coordinator, team) = coordinatorWithWorkspace()
        val ana = join(coordinator, team, "Ana")
        val ben = join(coordinator, team, "Ben")
        ana.sync()
        val before = coordinator.teamStatus(team.id)
        assertEquals(TeamTrust.Verified, before.trust)
        assertEquals("coordinator", before.role)
        assertEquals(before.epoch, ana.teamStatus(team.id).epoch)

        val benId = coordinator.team(team.id).first { it.name == "Ben" }.deviceId
        coordinator.revokeDevice(team.id, benId)
        val after = coordinator.teamStatus(team.id)
        assertEquals(before.epoch + 1u, after.epoch, "the same call rotated the workspace key")
        assertFalse(after.rotationDue)
        assertTrue(after.logLength > before.logLength)

        val later = coordinator.createVisit(team.id, busStationVisit(notes = "After Ben left."))
        coordinator.sync()
        ana.sync()
        assertEquals(after.epoch, ana.teamStatus(team.id).epoch)
        assertEquals("After Ben left.", ana.getVisit(later).notes)

        assertFailsWith<WaymarkException.DeviceRevoked> { ben.sync() }
        assertFailsWith<WaymarkException.NotFound> { ben.getVisit(later) }
    }

    @Test
    fun `a hostile server is reported and sync resumes when it stops`() = runBlocking<Unit> {
        val hostile = HostileServer(server).also { hostile = it }
        val (coordinator, team) = coordinatorWithWorkspace(url = hostile.url)
        val ana = join(coordinator, team, "Ana")
        assertEquals(TeamTrust.Verified, ana.teamStatus(team.id).trust)
        // A newcomer joins: the team changed, so each phone reads the team log at its next sync
        // (and the newcomer's whole view of the team comes from this server).
        val newcomer = openStore(tmp.resolve("newcomer.db"), name = "Newcomer").also { stores += it }
        newcomer.join(coordinator.createInvite(team.id, 600u))

        hostile.attack("forge-log")
        for (phone in listOf(ana, newcomer)) {
            val refused = assertFailsWith<WaymarkException.HostileServer> { phone.sync() }
            assertTrue(refused.reason.isNotEmpty())
            val status = phone.teamStatus(team.id)
            val trust = status.trust
            assertTrue(trust is TeamTrust.Attacked && trust.reason.isNotEmpty(), trust.toString())
            assertTrue(status.alerts.any { it.kind == AlertKind.FORK || it.kind == AlertKind.FORGED }, status.alerts.toString())
        }

        hostile.attack("none")
        ana.sync()
        val status = ana.teamStatus(team.id)
        assertEquals(TeamTrust.Verified, status.trust)
        assertTrue(status.alerts.isNotEmpty(), "what the server did stays on record")
        newcomer.sync()
        coordinator.sync()
        newcomer.sync()
        assertEquals(TeamTrust.Verified, newcomer.teamStatus(team.id).trust)
    }

    @Test
    fun `a restore from a backup loses nothing`() = runBlocking<Unit> {
        val (coordinator, team) = coordinatorWithWorkspace()
        val ana = join(coordinator, team, "Ana")
        val ben = join(coordinator, team, "Ben")
        for (phone in listOf(ana, ben, coordinator)) phone.sync()
        val backup = tmp.resolve("server.backup")
        server.backup(backup)

        // After the backup: Ana records a visit and syncs; then the backup is put back.
        ana.createVisit(team.id, busStationVisit(notes = "After the backup."))
        assertEquals(1uL, ana.sync().pushed)
        server.restore(backup)

        // Ben's visit takes a place in the server's log that Ana's phone has already read past.
        ben.createVisit(team.id, marketVisit())
        ben.sync()
        val report = ana.sync()
        assertTrue(report.resent >= 1uL, report.toString())
        val alerts = ana.teamStatus(team.id).alerts
        assertTrue(alerts.any { it.kind == AlertKind.REWOUND }, alerts.toString())
        for (phone in listOf(ben, coordinator)) phone.sync()

        // A phone that joins now learns everything from the server alone.
        val chidi = join(coordinator, team, "Chidi")
        val expected = listOf("After the backup.", marketVisit().notes).sorted()
        for (phone in listOf(coordinator, ana, ben, chidi)) {
            assertEquals(expected, notes(phone), phone.deviceName())
        }
    }

    @Test
    fun `a phone the restored server does not know keeps its outbox`() = runBlocking<Unit> {
        val (coordinator, team) = coordinatorWithWorkspace()
        val backup = tmp.resolve("server.backup")
        server.backup(backup)
        val dara = join(coordinator, team, "Dara")
        server.restore(backup)

        dara.createVisit(team.id, busStationVisit(notes = "Recorded by a phone the server forgot."))
        val pending = dara.pendingChanges(team.id)
        assertTrue(pending > 0uL)
        // Every sync is refused the same way, and nothing waiting to go out is dropped.
        repeat(2) {
            assertFailsWith<WaymarkException.DeviceUnknown> { dara.sync() }
            assertEquals(pending, dara.pendingChanges(team.id))
        }
        assertEquals(listOf("Recorded by a phone the server forgot."), notes(dara))
    }
}
