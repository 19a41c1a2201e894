// Anonymous tips from an app's point of view: a coordinator sets up the tip page; a tip sent
// through it (by the tipster's side of the bindings, which seals exactly as the page does)
// reaches the coordinator at sync as a restricted record, searchable, and never a member's
// phone; the coordinator replies and the tipster reads the reply with the receipt code; the tip
// becomes a visit. The server's files keep none of the words. Mirrors the first test of
// bindings/python/tests/test_tips.py.
package org.waymark

import java.nio.file.Files
import java.nio.file.Path
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.RecordKind
import uniffi.waymark.Sensitivity
import uniffi.waymark.TipFields
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore
import uniffi.waymark.readTipReplies
import uniffi.waymark.sendTip

class TipTest {
    @TempDir
    lateinit var tmp: Path
    private lateinit var serverData: Path
    private lateinit var server: Server
    private val stores = mutableListOf<WaymarkStore>()

    @BeforeEach
    fun startServer() {
        serverData = tmp.resolve("server-data")
        server = Server(serverData)
    }

    @AfterEach
    fun stopServer() {
        stores.forEach { it.close() }
        server.stop()
    }

    /** Every byte of every file under [dir], as one string (one char per byte). */
    private fun allBytes(dir: Path): String = Files.walk(dir).use { paths ->
        paths.filter { Files.isRegularFile(it) }.toList()
            .joinToString("") { String(Files.readAllBytes(it), Charsets.ISO_8859_1) }
    }

    @Test
    fun `a tip reaches the coordinator who replies and turns it into a visit`() = runBlocking<Unit> {
        val coordinator = openStore(tmp.resolve("coordinator.db"), name = "Coordinator").also { stores += it }
        val team = coordinator.createWorkspace("North district outreach")
        val (_, token) = server.workspaceAndToken()
        coordinator.connectWorkspace(team.id, server.url, token)
        coordinator.sync()
        val amina = joinTeam(coordinator, team.id, tmp.resolve("amina.db"), "Amina").also { stores += it }

        assertFailsWith<WaymarkException.NotPermitted>("a member set up the tip page") {
            amina.setTipPage(team.id, emptyList(), false)
        }
        val page = coordinator.setTipPage(team.id, emptyList(), false)
        assertTrue(page.url.startsWith(server.url + "/t/"), page.url)
        assertFalse(page.published)
        // The workspace's languages (its labels are in English and Spanish), with built-in words.
        assertEquals(listOf("en", "es"), page.languages.map { it.code })
        assertEquals("Enviar", page.languages[1].send)
        coordinator.sync()
        assertTrue(assertNotNull(coordinator.tipPage(team.id)).published)

        val code = sendTip(
            page.url,
            TipFields(
                what = "Three teenagers sleeping in the back of the Jade garment workshop",
                place = "Industrial road 9",
                time = "Every night this week",
                contact = "",
                language = "en",
            ),
        )
        assertEquals(20, code.replace("-", "").length, code)

        coordinator.sync()
        val tips = coordinator.tips(team.id)
        assertEquals(1, tips.size)
        val tip = tips[0]
        assertTrue(tip.what.startsWith("Three teenagers"), tip.what)
        assertEquals("Industrial road 9", tip.place)
        assertEquals("Every night this week", tip.time)
        assertEquals("en", tip.language)
        assertEquals(
            listOf(Triple(tip.id, RecordKind.TIP, Sensitivity.RESTRICTED)),
            coordinator.search("Jade garment", 10u).map { Triple(it.id, it.kind, it.sensitivity) },
        )
        amina.sync()
        assertEquals(emptyList(), amina.tips(team.id))
        assertEquals(emptyList(), amina.search("Jade garment", 10u))

        assertEquals(emptyList(), readTipReplies(page.url, code))
        coordinator.replyToTip(tip.id, "Thank you. A team will go there tomorrow.")
        coordinator.sync()
        assertEquals(
            listOf("Thank you. A team will go there tomorrow."),
            readTipReplies(page.url, code).map { it.text },
        )
        // Another code reads nothing: replies open only with the receipt they were sealed to.
        assertEquals(emptyList(), readTipReplies(page.url, "aaaaa-bbbbb-ccccc-ddddd"))

        val visitId = coordinator.tipToVisit(tip.id, busStationVisit(notes = "From an anonymous tip"))
        assertEquals(visitId, coordinator.getTip(tip.id).visitId)
        assertEquals("From an anonymous tip", coordinator.getVisit(visitId).notes)

        val stored = allBytes(serverData)
        assertTrue(stored.isNotEmpty(), "nothing read from the server's files")
        for (words in listOf("Jade garment", "Industrial road", "go there tomorrow")) {
            assertFalse(words in stored, "the server's files hold \"$words\"")
        }
    }
}
