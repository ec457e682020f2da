import io.kefu.client.KefuClient;
import io.kefu.protocol.Suite;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The command-line options shared by the examples. */
final class ExampleArgs {
    String host = "127.0.0.1";
    int port = 7420;
    String appId;
    String secret = System.getenv().getOrDefault("KEFU_APP_SECRET", "");
    final List<String> pins = new ArrayList<>();
    final List<Suite> suites = new ArrayList<>();
    String agent = "agent-7";
    boolean service;
    int count = 1;
    double timeout = 30;
    final List<String> positional = new ArrayList<>();

    static ExampleArgs parse(String[] args, String defaultAppId) throws java.io.IOException {
        ExampleArgs a = new ExampleArgs();
        a.appId = defaultAppId;
        List<String> split = new ArrayList<>(); // --name=value as well as --name value, as the Python examples take
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 2) {
                split.add(arg.substring(0, eq));
                split.add(arg.substring(eq + 1));
            } else {
                split.add(arg);
            }
        }
        String[] argv = split.toArray(new String[0]);
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--host" -> a.host = argv[++i];
                case "--port" -> a.port = Integer.parseInt(argv[++i]);
                case "--app-id" -> a.appId = argv[++i];
                case "--secret" -> a.secret = argv[++i];
                case "--pin" -> a.pins.add(argv[++i]);
                case "--pins-file" -> Files.readAllLines(Path.of(argv[++i])).stream().map(String::strip)
                        .filter(s -> !s.isEmpty()).forEach(a.pins::add);
                case "--suite" -> a.suites.add(Suite.valueOf(argv[++i].toUpperCase(java.util.Locale.ROOT)));
                case "--agent" -> a.agent = argv[++i];
                case "--service" -> a.service = true;
                case "--count" -> a.count = Integer.parseInt(argv[++i]);
                case "--timeout" -> a.timeout = Double.parseDouble(argv[++i]);
                default -> a.positional.add(argv[i]);
            }
        }
        return a;
    }

    KefuClient client() {
        return KefuClient.builder().host(host).port(port).appId(appId).appSecret(secret).pins(pins)
                .suites(suites.isEmpty() ? new Suite[] {Suite.NATIONAL} : suites.toArray(new Suite[0])).build();
    }
}
