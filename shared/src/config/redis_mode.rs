//! Which Redis the fleet talks to — one standalone server, a Redis Cluster, or a primary found
//! through Sentinel — parsed once from the configuration (DESIGN §8, §9) and refused with the
//! key's name when wrong.

use super::{Config, ConfigError};

/// The connection mode, from `redis_url`, `redis_cluster`, `redis_sentinels` and
/// `redis_master_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// One server at `redis_url` (the embedded default).
    Standalone { url: String },
    /// A Redis Cluster reached through one or more seed nodes; the client learns the rest.
    Cluster { seeds: Vec<String> },
    /// The primary named `master` as the Sentinels report it; `url` carries the credentials,
    /// TLS scheme and database used on the data nodes (its host part is not used).
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        url: String,
    },
}

fn invalid(key: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { key, message }
}

impl RedisMode {
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let urls: Vec<String> = cfg
            .redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(invalid(
                "redis_url",
                "is empty; accepted: redis://[user:password@]host:port[/db]".into(),
            ));
        }
        let sentinels: Vec<&str> = cfg
            .redis_sentinels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if cfg.redis_cluster && !sentinels.is_empty() {
            return Err(invalid(
                "redis_sentinels",
                "cannot be combined with redis_cluster=true; accepted: one of the two modes".into(),
            ));
        }
        if cfg.redis_cluster {
            for u in &urls {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    return Err(invalid(
                        "redis_url",
                        format!(
                            "`{}` is not a cluster seed; accepted: comma-separated redis:// or rediss:// node URLs",
                            crate::config::redact_url(u)
                        ),
                    ));
                }
            }
            return Ok(Self::Cluster { seeds: urls });
        }
        if urls.len() > 1 {
            return Err(invalid(
                "redis_url",
                "holds several URLs; accepted: one URL, or several seed nodes with redis_cluster=true"
                    .into(),
            ));
        }
        let url = urls.into_iter().next().expect("one url");
        if sentinels.is_empty() {
            if !cfg.redis_master_name.is_empty() {
                return Err(invalid(
                    "redis_master_name",
                    "is set without redis_sentinels; accepted: both, or neither".into(),
                ));
            }
            return Ok(Self::Standalone { url });
        }
        if cfg.redis_master_name.trim().is_empty() {
            return Err(invalid(
                "redis_master_name",
                "is required with redis_sentinels; accepted: the name the Sentinels monitor".into(),
            ));
        }
        let mut parsed = Vec::with_capacity(sentinels.len());
        for s in sentinels {
            let port = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, p)| !h.is_empty() && *p > 0);
            match port {
                Some((h, p)) => parsed.push((h.trim_matches(['[', ']']).to_owned(), p)),
                None => {
                    return Err(invalid(
                        "redis_sentinels",
                        format!("`{s}` is not host:port; accepted: comma-separated host:port"),
                    ));
                }
            }
        }
        if url.starts_with("unix://") {
            return Err(invalid(
                "redis_url",
                "is a unix socket; with redis_sentinels accepted: redis:// or rediss:// (for credentials and TLS)".into(),
            ));
        }
        Ok(Self::Sentinel {
            sentinels: parsed,
            master: cfg.redis_master_name.trim().to_owned(),
            url,
        })
    }

    /// A short name for logs and `/health`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Standalone { .. } => "standalone",
            Self::Cluster { .. } => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(f: impl FnOnce(&mut Config)) -> Result<RedisMode, String> {
        let mut cfg = Config::default();
        f(&mut cfg);
        RedisMode::from_config(&cfg).map_err(|e| e.to_string())
    }

    #[test]
    fn the_three_modes_parse() {
        assert_eq!(mode(|_| {}).unwrap().name(), "standalone");
        let c = mode(|c| {
            c.redis_cluster = true;
            c.redis_url = "redis://127.0.0.1:7000, redis://127.0.0.1:7001".into();
        })
        .unwrap();
        assert_eq!(
            c,
            RedisMode::Cluster {
                seeds: vec![
                    "redis://127.0.0.1:7000".into(),
                    "redis://127.0.0.1:7001".into()
                ]
            }
        );
        let s = mode(|c| {
            c.redis_sentinels = "127.0.0.1:26379,127.0.0.1:26380".into();
            c.redis_master_name = "scanq".into();
        })
        .unwrap();
        assert!(matches!(s, RedisMode::Sentinel { ref sentinels, .. } if sentinels.len() == 2));
    }

    #[test]
    fn wrong_combinations_name_the_key() {
        let e = mode(|c| c.redis_url = "redis://a:1,redis://b:2".into()).unwrap_err();
        assert!(e.contains("`redis_url`"), "{e}");
        let e = mode(|c| {
            c.redis_cluster = true;
            c.redis_sentinels = "h:1".into();
        })
        .unwrap_err();
        assert!(e.contains("`redis_sentinels`"), "{e}");
        let e = mode(|c| c.redis_sentinels = "h:1".into()).unwrap_err();
        assert!(e.contains("`redis_master_name`"), "{e}");
        let e = mode(|c| {
            c.redis_sentinels = "nohost".into();
            c.redis_master_name = "m".into();
        })
        .unwrap_err();
        assert!(
            e.contains("`redis_sentinels`") && e.contains("host:port"),
            "{e}"
        );
        let e = mode(|c| {
            c.redis_cluster = true;
            c.redis_url = "unix:///tmp/r.sock".into();
        })
        .unwrap_err();
        assert!(e.contains("cluster seed"), "{e}");
        let e = mode(|c| c.redis_master_name = "m".into()).unwrap_err();
        assert!(e.contains("`redis_master_name`"), "{e}");
    }
}
