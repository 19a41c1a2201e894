// The key helpers of WaymarkKeys.kt with a vault standing in for Android Keystore: the panic
// button deletes the keys and every file, and a rekey keeps every record whether or not the
// app is killed before the vault learns the new key. Mirrors bindings/python/tests/test_wipe.py.
package org.waymark

import java.nio.file.Files
import java.nio.file.Path
import kotlin.io.path.listDirectoryEntries
import kotlin.io.path.name
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNull
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.waymark.VisitFilter
import uniffi.waymark.WaymarkException
import uniffi.waymark.WaymarkStore

/** Keys in files of a directory, as KeystoreKeyVault keeps wrapped keys in app files. */
class FileKeyVault(private val dir: Path) : StoreKeyVault {
    private val current = dir.resolve("current.key")
    private val next = dir.resolve("next.key")

    init {
        Files.createDirectories(dir)
    }

    override fun currentKey(): ByteArray {
        if (!Files.exists(current)) Files.write(current, randomKey())
        return Files.readAllBytes(current)
    }

    override fun createPendingKey(): ByteArray = randomKey().also { Files.write(next, it) }

    override fun pendingKey(): ByteArray? = if (Files.exists(next)) Files.readAllBytes(next) else null

    override fun promotePendingKey() {
        Files.move(next, current, java.nio.file.StandardCopyOption.REPLACE_EXISTING)
    }

    override fun discardPendingKey() {
        Files.deleteIfExists(next)
    }

    override fun deleteAll() {
        Files.deleteIfExists(current)
        Files.deleteIfExists(next)
    }

    fun isEmpty() = dir.listDirectoryEntries().isEmpty()
}

class WipeAndRekeyTest {
    @TempDir
    lateinit var tmp: Path
    private lateinit var server: Server

    @BeforeEach
    fun startServer() {
        server = Server(tmp.resolve("server-data"))
    }

    @AfterEach
    fun stopServer() = server.stop()

    private fun storeFiles() = tmp.listDirectoryEntries("phone.db*").map { it.name }.sorted()

    @Test
    fun `the panic button deletes the keys and every file and hands back what revoking needs`() = runBlocking<Unit> {
        val vault = FileKeyVault(tmp.resolve("keystore"))
        val path = tmp.resolve("phone.db").toString()
        val store = WaymarkKeys.open(path, vault)
        val team = store.createWorkspace("North district outreach")
        val (_, token) = server.workspaceAndToken()
        store.connectWorkspace(team.id, server.url, token)
        store.createVisit(team.id, busStationVisit())
        store.listVisits(VisitFilter())
        assertEquals(listOf("phone.db", "phone.db-shm", "phone.db-wal"), storeFiles())
        val copy = tmp.resolve("copy.db")
        Files.copy(tmp.resolve("phone.db"), copy)

        val report = store.wipe(vault)
        assertEquals(emptyList(), storeFiles())
        assert(vault.isEmpty()) { "the vault still holds a key" }
        assertEquals(listOf(team.id), report.pendingRevocations.map { it.workspaceId })
        assertEquals(server.url, report.pendingRevocations.single().serverUrl)
        assertFailsWith<WaymarkException.Wiped> { store.listVisits(VisitFilter()) }
        assertFailsWith<WaymarkException.Wiped> { store.createVisit(team.id, marketVisit()) }
        assertFailsWith<WaymarkException.Wiped> { store.wipe(vault) }
        store.close()
        // The vault makes a new key: the copy taken before the wipe does not open with it.
        assertFailsWith<WaymarkException.WrongKey> { WaymarkKeys.open(copy.toString(), vault) }
    }

    @Test
    fun `rekey with the vault keeps every record and the old key no longer opens the store`() = runBlocking<Unit> {
        val vault = FileKeyVault(tmp.resolve("keystore"))
        val path = tmp.resolve("phone.db").toString()
        val old = vault.currentKey()
        val ids = WaymarkKeys.open(path, vault).use { store ->
            val team = store.createWorkspace("North district outreach")
            val ids = listOf(busStationVisit(), marketVisit()).map { store.createVisit(team.id, it) }
            store.rekey(vault)
            assertEquals(ids.sorted(), store.listVisits(VisitFilter()).map { it.id }.sorted())
            ids
        }
        assertNull(vault.pendingKey())
        assertFalse(old.contentEquals(vault.currentKey()))
        assertFailsWith<WaymarkException.WrongKey> { WaymarkStore.open(path, old) }
        WaymarkKeys.open(path, vault).use { store ->
            assertEquals(ids.sorted(), store.listVisits(VisitFilter()).map { it.id }.sorted())
        }
    }

    @Test
    fun `a rekey cut short before it committed opens with the old key and drops the new one`() = runBlocking<Unit> {
        val vault = FileKeyVault(tmp.resolve("keystore"))
        val path = tmp.resolve("phone.db").toString()
        val old = vault.currentKey()
        val id = WaymarkKeys.open(path, vault).use { store ->
            store.createVisit(store.createWorkspace("Team").id, busStationVisit())
        }
        // The app was killed after making the new key and before the store used it.
        vault.createPendingKey()
        WaymarkKeys.open(path, vault).use { store ->
            assertEquals("Central bus station, north gate", store.getVisit(id).place.name)
        }
        assertNull(vault.pendingKey())
        assertContentEquals(old, vault.currentKey())
    }

    @Test
    fun `a rekey that committed before the app died opens with the new key and keeps it`() = runBlocking<Unit> {
        val vault = FileKeyVault(tmp.resolve("keystore"))
        val path = tmp.resolve("phone.db").toString()
        val next = WaymarkKeys.open(path, vault).use { store ->
            store.createVisit(store.createWorkspace("Team").id, busStationVisit())
            // The store took the new key; the app died before the vault promoted it.
            vault.createPendingKey().also { store.rekey(it) }
        }
        WaymarkKeys.open(path, vault).use { store ->
            assertEquals(1, store.listVisits(VisitFilter()).size)
        }
        assertNull(vault.pendingKey())
        assertContentEquals(next, vault.currentKey())
    }
}
