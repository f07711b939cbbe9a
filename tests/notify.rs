//! The API's listener (`queue/listen.rs`) against a real Redis: a job's end published with its
//! hash (`publish_end` in `common.lua`) reaches the waiters of its tag as their answer, and only
//! when it is news to them; anything else costs a read, as before.

use std::time::Duration;

use redis::AsyncCommands;
use scanq::queue::{Listener, Subscription};
use scanq_tests::*;

const CHANNEL: &str = "notify-test";

/// A listener whose subscription is open (checked with `PUBSUB NUMSUB`).
async fn listening(redis: &RedisServer) -> (Listener, redis::aio::MultiplexedConnection) {
    let cfg = test_config(redis, "notify");
    let pool = scanq::queue::pool(&cfg).unwrap();
    let listener = Listener::start(pool, CHANNEL.to_owned());
    let con = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the listener subscribes", || {
        let mut con = con.clone();
        async move {
            let (_, n): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(CHANNEL)
                .query_async(&mut con)
                .await
                .unwrap();
            (n == 1).then_some(())
        }
    })
    .await;
    (listener, con)
}

async fn publish(con: &mut redis::aio::MultiplexedConnection, message: &str) {
    let _: u64 = con.publish(CHANNEL, message).await.unwrap();
}

async fn woken(sub: &mut Subscription) {
    assert!(sub.wait(Duration::from_secs(5)).await, "woken within 5 s");
}

#[tokio::test]
async fn a_published_end_is_the_answer_of_the_waiters_it_is_news_to() {
    let redis = RedisServer::start().await;
    let (listener, mut con) = listening(&redis).await;
    let mut sub = listener.subscribe("t/a/x");
    publish(
        &mut con,
        r#"t/a/x
["state","succeeded","evseq","4","result","{\"ok\":true}"]"#,
    )
    .await;
    woken(&mut sub).await;
    let end = sub.end_after(0).expect("the end as published");
    assert_eq!(end["state"], "succeeded");
    assert_eq!(end["result"], r#"{"ok":true}"#);
    // Not news to a waiter whose last read was that far already (or further).
    assert!(sub.end_after(4).is_none());
    assert!(sub.end_after(3).is_some());
    // The tag alone that follows the end (for older listeners) wakes, and keeps the end.
    publish(&mut con, "t/a/x").await;
    woken(&mut sub).await;
    assert!(sub.end_after(0).is_some());
    // A waiter that subscribes after the end did not wait for it: it reads the job.
    let later = listener.subscribe("t/a/x");
    assert!(later.end_after(0).is_none());
}

#[tokio::test]
async fn a_tag_alone_or_an_end_that_does_not_parse_leaves_the_waiter_to_read() {
    let redis = RedisServer::start().await;
    let (listener, mut con) = listening(&redis).await;
    let mut plain = listener.subscribe("t/a/plain");
    publish(&mut con, "t/a/plain").await;
    woken(&mut plain).await;
    assert!(plain.end_after(0).is_none());

    let mut bad = listener.subscribe("t/a/bad");
    publish(&mut con, "t/a/bad\nnot json").await;
    woken(&mut bad).await;
    assert!(bad.end_after(0).is_none());

    // Another tag's end is not this waiter's.
    let mut other = listener.subscribe("t/a/other");
    publish(&mut con, "t/a/else\n[\"state\",\"failed\",\"evseq\",\"3\"]").await;
    publish(&mut con, "t/a/other").await;
    woken(&mut other).await;
    assert!(other.end_after(0).is_none());
}
