package circuitkb;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.AdminTool;
import org.neo4j.cli.ExecutionContext;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.kernel.internal.Version;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Runs an embedded Neo4j Community DBMS with a Bolt connector on 127.0.0.1 until SIGTERM.
 *
 * <p>Usage: {@code DevServer --home DIR --port N --password-file FILE [--pagecache SIZE] [--database NAME]}.
 * DIR is the Neo4j home: stores live in DIR/data, configuration in DIR/conf (the same layout
 * {@code neo4j-admin} uses, so the offline importer writes where the server reads).
 *
 * <p>Auth stays enabled. Before the very first start (no system database yet) the password of user
 * {@code neo4j} is set the way {@code neo4j-admin dbms set-initial-password} does it: the admin command
 * runs in this process and writes DIR/data/dbms/auth.ini, which the system database reads when it is
 * created, so the user never enters the "password change required" state. The password is read from
 * a file so that it never appears on a command line or in the log.
 */
public final class DevServer {
    private DevServer() {}

    public static void main(String[] argv) {
        try {
            run(argv);
        } catch (Throwable error) {
            error.printStackTrace();
            System.exit(1); // Neo4j's non-daemon threads would otherwise keep a half-started JVM alive
        }
    }

    private static void run(String[] argv) throws Exception {
        Map<String, String> args = parseArgs(argv);
        Path home = Path.of(require(args, "--home")).toAbsolutePath();
        int port = Integer.parseInt(require(args, "--port"));
        Path passwordFile = Path.of(require(args, "--password-file"));
        long pageCache = parseBytes(args.getOrDefault("--pagecache", "512m"));
        String database = args.getOrDefault("--database", "neo4j");

        Files.createDirectories(home.resolve("conf"));
        if (isFirstStart(home)) {
            setInitialPassword(home, Files.readString(passwordFile, StandardCharsets.UTF_8).strip());
        }

        DatabaseManagementService service = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.initial_default_database, database)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Bolt otherwise waits 5 s twice on shutdown for connections nobody keeps open in development.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .setUserLogProvider(new Log4jLogProvider(System.out))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("circuitkb DevServer: shutting down");
            service.shutdown();
            System.out.println("circuitkb DevServer: stopped");
            stopped.countDown();
        }, "devserver-shutdown"));

        System.out.printf("circuitkb DevServer: Neo4j %s ready, bolt://127.0.0.1:%d, database %s%n",
                Version.getNeo4jVersion(), port, database);
        System.out.flush();
        stopped.await();
    }

    /** The system database is created on the first start; only before that does auth.ini count. */
    private static boolean isFirstStart(Path home) {
        return !Files.exists(home.resolve("data").resolve("databases").resolve("system"));
    }

    private static void setInitialPassword(Path home, String password) {
        if (password.isEmpty()) {
            throw new IllegalArgumentException("password file is empty");
        }
        // Command output is discarded: an error message from the argument parser could echo the password.
        PrintStream discard = new PrintStream(OutputStream.nullOutputStream());
        try (DefaultFileSystemAbstraction fs = new DefaultFileSystemAbstraction()) {
            ExecutionContext ctx = new ExecutionContext(home, home.resolve("conf"), discard, discard, fs);
            int code = AdminTool.execute(ctx, "dbms", "set-initial-password", "--", password);
            if (code != 0) {
                throw new IllegalStateException("set-initial-password failed with exit code " + code);
            }
        }
        System.out.println("circuitkb DevServer: initial password of user neo4j set");
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            args.put(argv[i], argv[i + 1]);
        }
        return args;
    }

    private static String require(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            throw new IllegalArgumentException("missing argument " + name);
        }
        return value;
    }

    /** Parses sizes like 512m, 2g, 65536 (bytes). */
    static long parseBytes(String text) {
        String s = text.strip().toLowerCase(Locale.ROOT);
        long unit = switch (s.isEmpty() ? ' ' : s.charAt(s.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            default -> 1L;
        };
        String digits = unit == 1L ? s : s.substring(0, s.length() - 1);
        return Long.parseLong(digits) * unit;
    }
}
