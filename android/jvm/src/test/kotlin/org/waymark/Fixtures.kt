// What the tests share: opening stores, typical visits and workshops, a real waymark-server
// process and a hostile server in front of it. Mirrors bindings/python/tests/{conftest,helpers}.py.
package org.waymark

import java.io.File
import java.net.HttpURLConnection
import java.net.URI
import java.nio.file.Path
import java.security.SecureRandom
import java.util.concurrent.TimeUnit
import uniffi.waymark.FollowUp
import uniffi.waymark.NewAttendee
import uniffi.waymark.NewReferral
import uniffi.waymark.NewVisit
import uniffi.waymark.NewWorkshop
import uniffi.waymark.Place
import uniffi.waymark.ReferralStatus
import uniffi.waymark.Sensitivity
import uniffi.waymark.WaymarkStore

/** 2026-11-01T09:00:00Z in ms. */
const val NOV_1 = 1_793_523_600_000L
const val HOUR = 3_600_000L

fun randomKey(): ByteArray = ByteArray(32).also { SecureRandom().nextBytes(it) }

/** Opens a store at [path] (a fresh random key unless given), optionally naming the device. */
suspend fun openStore(path: Path, key: ByteArray = randomKey(), name: String? = null): WaymarkStore {
    val store = WaymarkStore.open(path.toString(), key)
    if (name != null) store.setDeviceName(name)
    return store
}

/**
 * A phone that joins with an in-person invite of [coordinator] and is admitted into the team
 * log: it reads at once, but its own changes go out only once the coordinator's next sync has
 * admitted it, which its own next sync then learns.
 */
suspend fun joinTeam(coordinator: WaymarkStore, workspaceId: String, path: Path, name: String): WaymarkStore {
    val phone = openStore(path, name = name)
    phone.join(coordinator.createInvite(workspaceId, 600u))
    phone.sync()
    coordinator.sync()
    phone.sync()
    return phone
}

fun busStationVisit(
    notes: String = "Two young men waiting for a recruiter.",
    place: Place = Place(name = "Central bus station, north gate", area = "North"),
) = NewVisit(
    place = place,
    occurredAt = NOV_1,
    visitType = "transit_point",
    peopleReached = 4u,
    indicators = listOf("deception"),
    referrals = listOf(NewReferral(kind = "shelter", to = "Casa Esperanza", status = ReferralStatus.MADE)),
    followUp = FollowUp(needed = true, due = "2026-11-08"),
    sensitivity = Sensitivity.NORMAL,
    notes = notes,
)

fun marketVisit() = NewVisit(
    place = Place(name = "Fish market loading bay", area = "South"),
    occurredAt = NOV_1 + 2 * HOUR,
    visitType = "worksite_visit",
    peopleReached = 11u,
    indicators = listOf("retention_of_documents", "isolation"),
    sensitivity = Sensitivity.NORMAL,
    notes = "Workers say their passports are kept by the foreman.",
)

fun schoolWorkshop() = NewWorkshop(
    title = "Safe migration at San Rafael school",
    topic = "safe_migration",
    occurredAt = NOV_1 + 24 * HOUR,
    durationMinutes = 90u,
    venue = "San Rafael secondary school",
    area = "North",
    audience = "students",
    language = "es",
    facilitators = listOf("Ana", "Luis"),
    sensitivity = Sensitivity.NORMAL,
    notes = "Students asked many questions about job offers online.",
)

fun attendee(name: String, ageBand: String = "12_17", gender: String = "female") =
    NewAttendee(name = name, ageBand = ageBand, gender = gender)

/**
 * Starts a server process and returns it with the URL it prints (`listening on URL`); its output
 * is drained from then on so that it never blocks on a full pipe.
 */
fun startListening(vararg command: String): Pair<Process, String> {
    val proc = ProcessBuilder(*command).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val out = proc.inputStream.bufferedReader()
    var found: String? = null
    for (i in 0 until 20) {
        val line = out.readLine() ?: break
        if (line.startsWith("listening on http://")) {
            found = line.trim().removePrefix("listening on ")
            break
        }
    }
    if (found == null) {
        proc.destroyForcibly()
        proc.waitFor(10, TimeUnit.SECONDS)
        error("${File(command[0]).name} did not say where it listens")
    }
    Thread { out.readText() }.apply { isDaemon = true }.start()
    return proc to found
}

/** The binary named by the system property [property] (set by run-tests.sh) or [envVar]. */
private fun binary(property: String, envVar: String): String =
    System.getProperty(property)?.takeIf { File(it).canExecute() }
        ?: System.getenv(envVar)
        ?: error("set -D$property (or $envVar) to the binary")

/**
 * A real `waymark-server` process on a free loopback port, with its admin commands. The binary
 * is the system property `waymark.server` (set by run-tests.sh) or the env var
 * WAYMARK_SERVER_BIN.
 */
class Server(private val dataDir: Path, vararg serveArgs: String) : AutoCloseable {
    private val bin = binary("waymark.server", "WAYMARK_SERVER_BIN")
    private var proc: Process
    val url: String

    init {
        val (p, u) = startListening(
            bin, "--data-dir", dataDir.toString(), "serve", "--listen", "127.0.0.1:0", *serveArgs,
        )
        proc = p
        url = u
    }

    /** Runs `waymark-server --data-dir D --json ARGS` and returns its JSON output. */
    fun admin(vararg args: String): String {
        val p = ProcessBuilder(bin, "--data-dir", dataDir.toString(), "--json", *args)
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) { "admin ${args.toList()} failed: $out" }
        return out
    }

    /** A new workspace on the server and an enrolment token for it. */
    fun workspaceAndToken(): Pair<String, String> {
        val ws = jsonString(admin("workspace", "create", "--name", "North district"), "id")
        val token = jsonString(admin("token", "issue", "--workspace", ws, "--ttl", "1h"), "token")
        return ws to token
    }

    /** A backup at [to] (which must not exist), as the README tells the operator to take one. */
    fun backup(to: Path) {
        admin("backup", "--to", to.toString())
    }

    /**
     * Stops the server, puts the backup [from] back with `restore` and serves again at the same
     * address: phones keep the URL they joined with.
     */
    fun restore(from: Path) {
        stop()
        admin("restore", "--from", from.toString())
        val listen = url.removePrefix("http://")
        // The port was only just freed: the new process may be refused it for a moment.
        repeat(50) {
            try {
                proc = startListening(bin, "--data-dir", dataDir.toString(), "serve", "--listen", listen).first
                return
            } catch (notYet: IllegalStateException) {
                Thread.sleep(100)
            }
        }
        error("the server did not come back on $listen")
    }

    fun stop() {
        if (proc.isAlive) {
            proc.destroyForcibly()
            proc.waitFor(10, TimeUnit.SECONDS)
        }
    }

    override fun close() = stop()
}

/** The string value of [field] in a flat JSON object (the admin commands' answers). */
fun jsonString(json: String, field: String): String =
    Regex("\"${Regex.escape(field)}\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
        ?: error("no \"$field\" in $json")

/**
 * A `hostile-server` process relaying to [upstream], rewriting its answers as a breached server
 * would once told to ([attack]). Devices must join through its [url] from the start: a
 * membership keeps the URL it was made with. The binary is the system property
 * `waymark.hostile` (set by run-tests.sh) or the env var WAYMARK_HOSTILE_BIN.
 */
class HostileServer(upstream: Server) : AutoCloseable {
    private val proc: Process
    val url: String

    init {
        val (p, u) = startListening(binary("waymark.hostile", "WAYMARK_HOSTILE_BIN"), "--upstream", upstream.url)
        proc = p
        url = u
    }

    /**
     * Switches to the attack [name] (`forge-log`, `withhold-last-entry`, `swap-box-keys`), or
     * back to relaying faithfully (`none`).
     */
    fun attack(name: String) {
        val conn = URI("$url/_hostile/attack?name=$name").toURL().openConnection() as HttpURLConnection
        try {
            check(conn.responseCode == 200) { "the hostile server refused the attack $name" }
        } finally {
            conn.disconnect()
        }
    }

    fun stop() {
        if (proc.isAlive) {
            proc.destroyForcibly()
            proc.waitFor(10, TimeUnit.SECONDS)
        }
    }

    override fun close() = stop()
}
