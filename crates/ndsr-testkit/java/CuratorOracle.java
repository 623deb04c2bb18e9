// The real Apache Curator (5.4.0, Debian's libcurator-discovery-java) as a
// test oracle for ndsr's Curator format. Compiled by ndsr_testkit::curator;
// run by crates/ndsr/tests/curator.rs and ndsr-bench case 9; one command
// per run, output one JSON line per result on stdout.
//
//   read CONNECT BASE NAME             ServiceDiscovery.queryForInstances, then
//                                      ServiceProvider.getInstance (round robin)
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

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
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
        String connect = args[1], base = args[2], name = args[3];
        CuratorFramework client = CuratorFrameworkFactory.builder()
            .connectString(connect)
            .sessionTimeoutMs(10000)
            .connectionTimeoutMs(10000)
            .retryPolicy(new ExponentialBackoffRetry(100, 5))
            .build();
        client.start();
        client.blockUntilConnected();
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
                ServiceInstance<Object> picked = provider.getInstance();
                System.out.println("{\"picked\":" + JSON.writeValueAsString(picked == null ? null : picked.getId()) + "}");
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
