// The real Apache Curator (5.4.0, Debian's libcurator-discovery-java) as a
// test oracle for ndsr's Curator format. Compiled by ndsr_testkit::curator;
// run by crates/ndsr/tests/curator.rs and ndsr-bench case 9; one command
// per run, output one JSON line per result on stdout.
//
//   read CONNECT BASE NAME [PICKS]     ServiceDiscovery.queryForInstances, then
//                                      PICKS (default 1) ServiceProvider.getInstance
//                                      calls (round robin), one line each
//   register CONNECT BASE NAME ID ADDRESS PORT
//                                      registers a DYNAMIC instance with a map
//                                      payload and a uriSpec; prints "registered";
//                                      stays until stdin closes
//   cache CONNECT BASE NAME            a ServiceCache; prints the instance ids
//                                      after the initial load and on every
//                                      change, until stdin closes
//   bench CONNECT BASE NAME PICKS      times queryForInstances, then PICKS
//                                      round-robin getInstance calls of a
//                                      started ServiceProvider (ndsr-bench
//                                      case 9)
//
// Elections and locks (crates/ndsr/tests/curator_election.rs, ndsr-bench
// case 13): one plain line per event on stdout; commands one per line on
// stdin; "quit" or the end of stdin closes the session and exits.
//
//   latch CONNECT PATH ID              a LeaderLatch: prints "started", then
//                                      "leader" / "follower" as it changes,
//                                      "lost" when the connection is
//                                      suspended or lost; stdin "resign"
//                                      closes the latch ("resigned")
//   selector CONNECT PATH ID           a LeaderSelector (no requeue): prints
//                                      "started", "leader" when
//                                      takeLeadership begins; it blocks until
//                                      stdin "resign" ("resigned"); "lost" as
//                                      above
//     (both also take stdin "participants": one JSON line
//      {"participants":[{"id":..,"leader":..},..]}, getParticipants' order)
//   contenders CONNECT PATH latch|selector
//                                      prints that JSON line once and exits
//   mutex CONNECT PATH                 an InterProcessMutex; also
//   read-lock CONNECT PATH             InterProcessReadWriteLock's read and
//   write-lock CONNECT PATH            write locks: prints "started"; stdin
//                                      "acquire" (blocks; "acquired"),
//                                      "try MS" ("acquired" or "busy"),
//                                      "release" ("released")
//
// -Doracle.sessionMs=N sets the session timeout (default 10000);
// -Doracle.stamp=true appends System.nanoTime() (CLOCK_MONOTONIC) to each
// event line.

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;

public class CuratorOracle {
    static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "latch": latch(connect(args[1]), args[2], args[3]); return;
            case "selector": selector(connect(args[1]), args[2], args[3]); return;
            case "contenders": contenders(connect(args[1]), args[2], args[3]); return;
            case "mutex": case "read-lock": case "write-lock": lock(connect(args[1]), args[0], args[2]); return;
            default: break;
        }
        String connect = args[1], base = args[2], name = args[3];
        CuratorFramework client = connect(connect);
        ServiceDiscovery<Object> discovery = ServiceDiscoveryBuilder.builder(Object.class)
            .client(client)
            .basePath(base)
            .serializer(new JsonInstanceSerializer<>(Object.class))
            .build();
        discovery.start();
        switch (args[0]) {
            case "read": {
                for (ServiceInstance<Object> i : discovery.queryForInstances(name)) {
                    System.out.println(JSON.writeValueAsString(describe(i)));
                }
                ServiceProvider<Object> provider = discovery.serviceProviderBuilder().serviceName(name).build();
                provider.start();
                int picks = args.length > 4 ? Integer.parseInt(args[4]) : 1;
                for (int n = 0; n < picks; n++) {
                    ServiceInstance<Object> picked = provider.getInstance();
                    System.out.println("{\"picked\":" + JSON.writeValueAsString(picked == null ? null : picked.getId()) + "}");
                }
                provider.close();
                break;
            }
            case "register": {
                Map<String, Object> payload = new LinkedHashMap<>();
                payload.put("zone", "a");
                ServiceInstance<Object> instance = ServiceInstance.builder()
                    .name(name)
                    .id(args[4])
                    .address(args[5])
                    .port(Integer.parseInt(args[6]))
                    .payload(payload)
                    .uriSpec(new UriSpec("{scheme}://{address}:{port}"))
                    .build();
                discovery.registerService(instance);
                System.out.println("registered");
                System.out.flush();
                while (System.in.read() >= 0) { }
                break;
            }
            case "cache": {
                ServiceCache<Object> cache = discovery.serviceCacheBuilder().name(name).build();
                cache.addListener(new ServiceCacheListener() {
                    @Override public void cacheChanged() { print(cache.getInstances()); }
                    @Override public void stateChanged(CuratorFramework c, ConnectionState s) { }
                });
                cache.start();
                print(cache.getInstances());
                while (System.in.read() >= 0) { }
                cache.close();
                break;
            }
            case "bench": {
                long start = System.nanoTime();
                int listed = discovery.queryForInstances(name).size();
                long queryNs = System.nanoTime() - start;
                ServiceProvider<Object> provider = discovery.serviceProviderBuilder().serviceName(name).build();
                start = System.nanoTime();
                provider.start();
                long startNs = System.nanoTime() - start;
                int picks = Integer.parseInt(args[4]);
                // Warm up the JIT, then time.
                for (int i = 0; i < picks; i++) provider.getInstance();
                start = System.nanoTime();
                int found = 0;
                for (int i = 0; i < picks; i++) if (provider.getInstance() != null) found++;
                long pickNs = System.nanoTime() - start;
                System.out.println("{\"listed\":" + listed + ",\"query_ms\":" + queryNs / 1e6 + ",\"provider_start_ms\":"
                    + startNs / 1e6 + ",\"pick_ns\":" + (double) pickNs / picks + ",\"found\":" + found + "}");
                provider.close();
                break;
            }
            default:
                throw new IllegalArgumentException(args[0]);
        }
        discovery.close();
        client.close();
    }

    static CuratorFramework connect(String connect) throws InterruptedException {
        int session = Integer.getInteger("oracle.sessionMs", 10000);
        CuratorFramework client = CuratorFrameworkFactory.builder()
            .connectString(connect)
            .sessionTimeoutMs(session)
            .connectionTimeoutMs(Math.min(session, 10000))
            .retryPolicy(new ExponentialBackoffRetry(100, 5))
            .build();
        client.start();
        client.blockUntilConnected();
        return client;
    }

    /** An event line, stamped with -Doracle.stamp=true. */
    static synchronized void say(String event) {
        System.out.println(Boolean.getBoolean("oracle.stamp") ? event + " " + System.nanoTime() : event);
        System.out.flush();
    }

    /** The next stdin command; at its end (or "quit") closes and exits. */
    static String command(java.io.BufferedReader in, CuratorFramework client) throws Exception {
        String line = in.readLine();
        if (line == null || line.trim().equals("quit")) {
            client.close();
            System.exit(0);
        }
        return line.trim();
    }

    static java.io.BufferedReader stdin() {
        return new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
    }

    static void sayLost(CuratorFramework client) {
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.SUSPENDED || state == ConnectionState.LOST) say("lost");
        });
    }

    static String participants(Collection<Participant> all) throws Exception {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Participant p : all) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", p.getId());
            m.put("leader", p.isLeader());
            out.add(m);
        }
        return "{\"participants\":" + JSON.writeValueAsString(out) + "}";
    }

    static void latch(CuratorFramework client, String path, String id) throws Exception {
        LeaderLatch latch = new LeaderLatch(client, path, id);
        latch.addListener(new LeaderLatchListener() {
            @Override public void isLeader() { say("leader"); }
            @Override public void notLeader() { say("follower"); }
        });
        sayLost(client);
        latch.start();
        say("started");
        java.io.BufferedReader in = stdin();
        while (true) {
            String c = command(in, client);
            if (c.equals("participants")) say(participants(latch.getParticipants()));
            else if (c.equals("resign")) {
                say("resigning");
                latch.close();
                say("resigned");
            }
        }
    }

    static void selector(CuratorFramework client, String path, String id) throws Exception {
        Semaphore resign = new Semaphore(0);
        LeaderSelector selector = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
            @Override public void takeLeadership(CuratorFramework c) throws Exception {
                say("leader");
                try {
                    resign.acquire();
                } finally {
                    say("resigned");
                }
            }
        });
        selector.setId(id);
        sayLost(client);
        selector.start();
        say("started");
        java.io.BufferedReader in = stdin();
        while (true) {
            String c = command(in, client);
            if (c.equals("participants")) say(participants(selector.getParticipants()));
            else if (c.equals("resign")) {
                say("resigning");
                resign.release();
            }
        }
    }

    static void contenders(CuratorFramework client, String path, String kind) throws Exception {
        Collection<Participant> all = kind.equals("latch")
            ? new LeaderLatch(client, path).getParticipants()
            : new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                @Override public void takeLeadership(CuratorFramework c) { }
            }).getParticipants();
        say(participants(all));
        client.close();
    }

    static void lock(CuratorFramework client, String kind, String path) throws Exception {
        org.apache.curator.framework.recipes.locks.InterProcessLock lock;
        if (kind.equals("mutex")) lock = new InterProcessMutex(client, path);
        else if (kind.equals("read-lock")) lock = new InterProcessReadWriteLock(client, path).readLock();
        else lock = new InterProcessReadWriteLock(client, path).writeLock();
        say("started");
        java.io.BufferedReader in = stdin();
        while (true) {
            String c = command(in, client);
            if (c.equals("acquire")) {
                lock.acquire();
                say("acquired");
            } else if (c.startsWith("try ")) {
                say(lock.acquire(Long.parseLong(c.substring(4)), TimeUnit.MILLISECONDS) ? "acquired" : "busy");
            } else if (c.equals("release")) {
                lock.release();
                say("released");
            }
        }
    }

    static synchronized void print(Collection<ServiceInstance<Object>> instances) {
        TreeSet<String> ids = new TreeSet<>();
        for (ServiceInstance<Object> i : instances) ids.add(i.getId());
        try {
            System.out.println("{\"ids\":" + JSON.writeValueAsString(new ArrayList<>(ids)) + "}");
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
        System.out.flush();
    }

    static Map<String, Object> describe(ServiceInstance<Object> i) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", i.getName());
        m.put("id", i.getId());
        m.put("address", i.getAddress());
        m.put("port", i.getPort());
        m.put("sslPort", i.getSslPort());
        m.put("payload", i.getPayload());
        m.put("registrationTimeUTC", i.getRegistrationTimeUTC());
        m.put("serviceType", i.getServiceType().name());
        m.put("enabled", i.isEnabled());
        m.put("uri", i.getUriSpec() == null ? null : i.buildUriSpec());
        return m;
    }
}
