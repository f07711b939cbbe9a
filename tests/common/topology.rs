//! Real Redis topologies for the scale-out tests: a Redis Cluster (`redis-server
//! --cluster-enabled yes` × N, joined with `redis-cli --cluster create`) and a Sentinel setup
//! (a primary, a replica and three `redis-server --sentinel`). All on loopback, all killed on
//! drop.

use std::process::{Command, Stdio};
use std::time::Duration;

use scanq::config::Config;

use crate::{RedisServer, eventually, test_config};

/// Arguments of a cluster node: fast failure detection, and a replica may take over even right
/// after a restart of the test.
const CLUSTER_NODE: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--cluster-replica-validity-factor",
    "0",
];

/// A Redis Cluster of `masters` primaries with `replicas` replicas each.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start(masters: usize, replicas: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            nodes.push(RedisServer::start_with(CLUSTER_NODE).await);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(30)).await;
        cluster
    }

    /// A cluster of `masters` primaries and no replicas (any number, 1 included, which
    /// `redis-cli --cluster create` refuses): each node gets an equal range of the slots with
    /// `CLUSTER ADDSLOTSRANGE`, then they meet.
    pub async fn start_masters(masters: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..masters {
            nodes.push(RedisServer::start_with(CLUSTER_NODE).await);
        }
        for (i, n) in nodes.iter().enumerate() {
            let lo = i * 16384 / masters;
            let hi = (i + 1) * 16384 / masters - 1;
            let mut con = n.con().await;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(lo)
                .arg(hi)
                .query_async(&mut con)
                .await
                .expect("addslotsrange");
            if i > 0 {
                let _: () = redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(nodes[0].port)
                    .query_async(&mut con)
                    .await
                    .expect("cluster meet");
            }
        }
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(30)).await;
        cluster
    }

    /// Comma-separated seed URLs (every node).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every live node reports `cluster_state:ok` and agrees on the masters.
    pub async fn wait_ok(&self, limit: Duration) {
        let ports: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.port)
            .collect();
        eventually(limit, "cluster_state:ok on every node", || {
            let ports = ports.clone();
            async move {
                for p in ports {
                    let c = redis::Client::open(format!("redis://127.0.0.1:{p}/")).ok()?;
                    let mut con = c.get_multiplexed_async_connection().await.ok()?;
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut con)
                        .await
                        .ok()?;
                    if !info.contains("cluster_state:ok") {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }

    /// The node serving `key`'s slot as primary.
    pub async fn master_of(&self, key: &str) -> usize {
        let slot = scanq::queue::slot(key.as_bytes());
        let (_, masters) = self.masters().await;
        let port = masters
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, p)| *p)
            .expect("slot served");
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("node")
    }

    /// (node index asked, [(first slot, last slot, primary port)]).
    pub async fn masters(&self) -> (usize, Vec<(u16, u16, u16)>) {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_running() {
                continue;
            }
            let Ok(mut con) = n.client().get_multiplexed_async_connection().await else {
                continue;
            };
            let slots: redis::RedisResult<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut con)
                .await;
            let Ok(slots) = slots else { continue };
            let mut out = Vec::new();
            for s in slots {
                if let redis::Value::Array(v) = s
                    && let (Some(lo), Some(hi), Some(redis::Value::Array(m))) =
                        (v.first(), v.get(1), v.get(2))
                {
                    let lo: u16 = redis::from_redis_value_ref(lo).unwrap_or(0);
                    let hi: u16 = redis::from_redis_value_ref(hi).unwrap_or(0);
                    let port: u16 = m
                        .get(1)
                        .and_then(|p| redis::from_redis_value_ref(p).ok())
                        .unwrap_or(0);
                    out.push((lo, hi, port));
                }
            }
            return (i, out);
        }
        panic!("no cluster node answers");
    }

    /// A test configuration in cluster mode.
    pub fn config(&self, name: &str) -> Config {
        let mut cfg = test_config(&self.nodes[0], name);
        cfg.redis_cluster = true;
        cfg.redis_url = self.seeds();
        cfg
    }
}

/// A primary, one replica, and three Sentinels watching the primary as `scanq`.
pub struct SentinelSet {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
}

/// The port of the primary as the Sentinel on `sentinel_port` names it.
pub async fn sentinel_primary_port(sentinel_port: u16) -> Option<u16> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}/")).ok()?;
    let mut con = c.get_multiplexed_async_connection().await.ok()?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER_NAME)
        .query_async(&mut con)
        .await
        .ok()?;
    addr.map(|a| a.1)
}

/// The `detail` of the `redis` check of a `/health` report, after asserting that it passed.
pub fn redis_check_detail(health: &serde_json::Value) -> String {
    let check = health["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "redis"))
        .unwrap_or_else(|| panic!("no redis check in {health}"));
    assert_eq!(check["status"], "pass", "{health}");
    check["detail"].as_str().unwrap_or("").to_owned()
}

/// Posts `body` to `/v1/jobs` until the API accepts it (200 or 202), within 40 s: a submit
/// refused while the store fails over, retried with the same correlation ID.
pub async fn submit_until_accepted(base: &str, body: &serde_json::Value) {
    eventually(Duration::from_secs(40), "submit after failover", || async {
        let r = crate::http()
            .post(format!("{base}/v1/jobs"))
            .json(body)
            .send()
            .await
            .ok()?;
        matches!(r.status().as_u16(), 200 | 202).then_some(())
    })
    .await;
}

/// What the Sentinels call the primary.
pub const MASTER_NAME: &str = "scanq";

impl SentinelSet {
    pub async fn start() -> Self {
        let primary = RedisServer::start().await;
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]).await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(RedisServer::start_sentinel(primary.port, MASTER_NAME).await);
        }
        let set = Self {
            primary,
            replica,
            sentinels,
        };
        let port = set.primary.port;
        set.wait_primary(port, Duration::from_secs(20)).await;
        // The replica is in sync and known to the Sentinels before the test starts.
        let ports: Vec<u16> = set.sentinels.iter().map(|s| s.port).collect();
        eventually(
            Duration::from_secs(20),
            "sentinels know the replica",
            || {
                let ports = ports.clone();
                async move {
                    for p in ports {
                        let c = redis::Client::open(format!("redis://127.0.0.1:{p}/")).ok()?;
                        let mut con = c.get_multiplexed_async_connection().await.ok()?;
                        let r: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(MASTER_NAME)
                            .query_async(&mut con)
                            .await
                            .ok()?;
                        if r.is_empty() {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
        set
    }

    /// Waits until every Sentinel names the server on `port` as the primary.
    pub async fn wait_primary(&self, port: u16, limit: Duration) {
        let ports: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        eventually(limit, &format!("sentinels name :{port} primary"), || {
            let ports = ports.clone();
            async move {
                for p in ports {
                    if sentinel_primary_port(p).await != Some(port) {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }

    /// A test configuration in Sentinel mode.
    pub fn config(&self, name: &str) -> Config {
        let mut cfg = test_config(&self.primary, name);
        cfg.redis_sentinels = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",");
        cfg.redis_master_name = MASTER_NAME.into();
        cfg
    }
}
