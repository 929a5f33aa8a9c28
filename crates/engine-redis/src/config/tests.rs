//! Unit tests of the configuration reader.

use super::cluster::percent_decode;
use super::*;
use serde_json::json;

fn cfg(v: Value) -> Result<RedisConfig, ConfigError> {
    RedisConfig::from_map(v.as_object().unwrap())
}

fn addrs(c: &RedisConfig) -> Vec<String> {
    match &c.topology {
        Topology::Shards(s) => s.iter().map(ShardTarget::label).collect(),
        Topology::Cluster(c) => c.nodes.clone(),
    }
}

#[test]
fn defaults_to_one_local_shard() {
    let c = cfg(json!({})).unwrap();
    assert_eq!(addrs(&c), ["127.0.0.1:6379"]);
    assert_eq!(c.prefix, "centrifugo");
    assert_eq!(c.history_meta_ttl, Duration::ZERO);
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
    assert_eq!(c.read_timeout, Duration::from_secs(5));
}

#[test]
fn host_and_port_lists_shard_like_2x() {
    let c = cfg(json!({"redis_host": "10.0.0.1", "redis_port": "6379,6380"})).unwrap();
    assert_eq!(addrs(&c), ["10.0.0.1:6379", "10.0.0.1:6380"]);
    let c = cfg(json!({"redis_host": "a,b", "redis_port": 7000})).unwrap();
    assert_eq!(addrs(&c), ["a:7000", "b:7000"]);
    let c = cfg(json!({"redis_host": "a,b", "redis_port": "1,2"})).unwrap();
    assert_eq!(addrs(&c), ["a:1", "b:2"]);
    assert!(cfg(json!({"redis_host": "a,b,c", "redis_port": "1,2"})).is_err());
    assert!(cfg(json!({"redis_port": "x"})).is_err());
}

#[test]
fn address_lists_urls_passwords_and_dbs() {
    let c = cfg(
        json!({"redis_address": ["127.0.0.1:7001", "redis://127.0.0.1:7002/3"],
        "redis_password": "pw", "redis_prefix": "p"}),
    )
    .unwrap();
    assert_eq!(addrs(&c), ["127.0.0.1:7001", "127.0.0.1:7002"]);
    assert_eq!(c.prefix, "p");
    let Topology::Shards(shards) = &c.topology else {
        panic!()
    };
    for (shard, db) in shards.iter().zip([0, 3]) {
        let ShardTarget::Direct(info) = shard else {
            panic!()
        };
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(info.redis_settings().db(), db);
    }
    let c = cfg(json!({"redis_url": "redis://h1:1,redis://h2:2", "redis_db": "1,2"})).unwrap();
    assert_eq!(addrs(&c), ["h1:1", "h2:2"]);
    assert!(cfg(json!({"redis_address": "a:1,b:2", "redis_db": "1,2,3"})).is_err());
    // TLS: rediss:// URLs and redis_tls (standalone shards); not yet through sentinels.
    assert!(cfg(json!({"redis_address": "rediss://a:1"})).is_ok());
    let c = cfg(json!({"redis_tls": true, "redis_tls_skip_verify": true, "redis_address": "a:1"}))
        .unwrap();
    let Topology::Shards(s) = &c.topology else {
        panic!("shards expected")
    };
    assert!(matches!(&s[0], ShardTarget::Direct(i)
        if matches!(i.addr(), ConnectionAddr::TcpTls { insecure: true, .. })));
    assert!(
        cfg(json!({"redis_tls": true, "redis_master_name": "m", "redis_sentinels": "a:1"}))
            .is_err()
    );
}

#[test]
fn sentinel_and_cluster() {
    let c =
        cfg(json!({"redis_master_name": "m1,m2", "redis_sentinels": "127.0.0.1:26379"})).unwrap();
    assert_eq!(addrs(&c), ["sentinel master m1", "sentinel master m2"]);
    assert!(cfg(json!({"redis_master_name": "m"})).is_err());
    let c = cfg(json!({"redis_cluster_addrs": "127.0.0.1:7000,127.0.0.1:7001"})).unwrap();
    assert_eq!(addrs(&c), ["127.0.0.1:7000", "127.0.0.1:7001"]);
    assert_eq!(c.num_shards(), 1);
    let c = cfg(json!({"redis_cluster_address": ["redis://127.0.0.1:7000"]})).unwrap();
    assert_eq!(addrs(&c), ["127.0.0.1:7000"]);
}

fn cluster(v: Value) -> ClusterTarget {
    match cfg(v).unwrap().topology {
        Topology::Cluster(c) => c,
        Topology::Shards(s) => panic!("one cluster expected, got {s:?}"),
    }
}

fn clusters(v: Value) -> Vec<ClusterTarget> {
    match cfg(v).unwrap().topology {
        Topology::Shards(s) => s
            .into_iter()
            .map(|t| match t {
                ShardTarget::Cluster(c) => c,
                other => panic!("cluster shards expected, got {other:?}"),
            })
            .collect(),
        Topology::Cluster(c) => panic!("several clusters expected, got {c:?}"),
    }
}

#[test]
fn cluster_address_forms_of_every_generation() {
    let three = ["a:1", "b:2", "c:3"];
    // 2.x: one element holding comma-separated seeds = one cluster.
    for key in ["redis_cluster_addrs", "redis_cluster_address"] {
        assert_eq!(cluster(json!({key: ["a:1,b:2,c:3"]})).nodes, three);
        assert_eq!(cluster(json!({key: ["a:1, b:2 ,c:3"]})).nodes, three);
        // A string (environment): clusters separated by spaces.
        assert_eq!(cluster(json!({key: "a:1,b:2,c:3"})).nodes, three);
        assert_eq!(
            cluster(json!({key: "[\"redis://a:1,b:2\"]"})).nodes,
            ["a:1", "b:2"]
        );
        // Several elements = several clusters, sharded by channel.
        let cs = clusters(json!({key: ["a:1,b:2", "c:3"]}));
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].nodes, ["a:1", "b:2"]);
        assert_eq!(cs[1].nodes, ["c:3"]);
        let cs = clusters(json!({key: "a:1,b:2 c:3,d:4"}));
        assert_eq!(cs[1].nodes, ["c:3", "d:4"]);
        assert!(cfg(json!({key: ["a:1,nope"]})).is_err());
    }
    // v6: redis+cluster:// in engine.redis.address (= redis_address).
    let c = cluster(json!({"redis_address": "redis+cluster://a:1?addr=b:2&addr=c:3"}));
    assert_eq!(c.nodes, three);
    assert_eq!(c.tls, None);
    assert_eq!(c.password, None);
    let c = cluster(json!({
        "redis_address": ["rediss+cluster://us%40r:p%3Ass@a:1/0?addr=b:2&foo=1"],
        "redis_password": "other"}));
    assert_eq!(c.nodes, ["a:1", "b:2"]);
    assert_eq!(c.username.as_deref(), Some("us@r"));
    assert_eq!(c.password.as_deref(), Some("p:ss"));
    assert_eq!(c.tls, Some(ClusterTls::plain(false)));
    let cs = clusters(json!({"redis_address": [
        "redis+cluster://a:1?addr=b:2", "redis+cluster://c:3"]}));
    assert_eq!(cs.len(), 2);
    assert!(cfg(json!({"redis_address": ["redis+cluster://a:1", "b:2"]})).is_err());
    assert!(cfg(json!({"redis_address": "redis+cluster://"})).is_err());
    // v6 cluster_address (= redis_cluster_address): comma-separated seeds per shard.
    assert_eq!(
        cluster(json!({"redis_cluster_address": ["a:1,b:2,c:3"]})).nodes,
        three
    );
    // Credentials and TLS for a cluster.
    let c = cluster(
        json!({"redis_cluster_address": "a:1", "redis_password": "pw",
        "redis_user": "u", "redis_tls": true, "redis_tls_skip_verify": true}),
    );
    assert_eq!(c.password.as_deref(), Some("pw"));
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.tls, Some(ClusterTls::plain(true)));
    for c in clusters(json!({"redis_cluster_address": ["a:1", "b:2"], "redis_tls": true})) {
        assert_eq!(c.tls, Some(ClusterTls::plain(false)));
    }
    // Sharded PUB/SUB needs one cluster.
    assert!(cfg(json!({"redis_cluster_address": ["a:1", "b:2"],
        "redis_sharded_pub_sub_partitions": 8}))
    .is_err());
    assert_eq!(percent_decode("a%2"), "a%2");
    assert_eq!(percent_decode("%zz%41é"), "%zzAé");
}

#[test]
fn sharded_pub_sub_partitions() {
    let parts = |v: Value| match cfg(v).unwrap().topology {
        Topology::Cluster(c) => c.sharded_pub_sub_partitions,
        Topology::Shards(_) => panic!("cluster expected"),
    };
    let seeds = "127.0.0.1:7000";
    assert_eq!(
        parts(json!({"redis_cluster_address": seeds})),
        0,
        "classic default"
    );
    assert_eq!(
        parts(json!({"redis_cluster_address": seeds, "redis_sharded_pub_sub_partitions": 64})),
        64
    );
    assert_eq!(
        parts(json!({"redis_cluster_address": seeds, "redis_sharded_pub_sub_partitions": "8"})),
        8
    );
    assert_eq!(
        parts(json!({"redis_cluster_address": seeds, "redis_cluster_sharded_pubsub": true})),
        DEFAULT_PARTITIONS
    );
    assert_eq!(
        parts(json!({"redis_cluster_address": seeds, "redis_cluster_sharded_pubsub": false})),
        0
    );
    for bad_value in [json!(-1), json!("x"), json!(1.5), json!(20000)] {
        let e = cfg(json!({"redis_cluster_address": seeds,
            "redis_sharded_pub_sub_partitions": bad_value}))
        .unwrap_err();
        assert!(e.0.contains("redis_sharded_pub_sub_partitions"), "{e}");
    }
    let e =
        cfg(json!({"redis_address": "a:1", "redis_sharded_pub_sub_partitions": 16})).unwrap_err();
    assert!(e.0.contains("needs a Redis Cluster"), "{e}");
    assert!(cfg(json!({"redis_address": "a:1", "redis_sharded_pub_sub_partitions": 0})).is_ok());
}

#[test]
fn durations_and_env_strings() {
    let c = cfg(
        json!({"redis_history_meta_ttl": "1m30s", "redis_connect_timeout": "250ms",
        "redis_read_timeout": 2}),
    )
    .unwrap();
    assert_eq!(c.history_meta_ttl, Duration::from_secs(90));
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.read_timeout, Duration::from_secs(2));
    let c = cfg(json!({"redis_sequence_ttl": "3600"})).unwrap();
    assert_eq!(c.history_meta_ttl, Duration::from_secs(3600));
    assert!(cfg(json!({"redis_read_timeout": "soon"})).is_err());
    let c = cfg(json!({"redis_address": "[\"a:1\",\"b:2\"]"})).unwrap();
    assert_eq!(addrs(&c), ["a:1", "b:2"]);
}
