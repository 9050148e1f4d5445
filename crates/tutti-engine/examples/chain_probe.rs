use tutti_engine::rundata::RunData;
use tutti_engine::sql::SqlLimits;
#[tokio::main]
async fn main() {
    let p = std::env::temp_dir().join(format!("probe-{}.sqlite", std::process::id()));
    let mut d = RunData::open(&p).await.unwrap();
    d.read_csv(0, "T0", "x", b"x\n1\n", 10).await.unwrap();
    let mut t = std::time::Instant::now();
    for i in 1..10000usize {
        let (a, b) = (format!("T{}", i - 1), format!("T{i}"));
        d.sql(
            i,
            &[&a],
            &b,
            &format!("SELECT * FROM {a}"),
            SqlLimits::default(),
        )
        .await
        .unwrap();
        if i % 1000 == 0 {
            println!("{i}: {:?}", t.elapsed());
            t = std::time::Instant::now();
        }
    }
    let _ = std::fs::remove_file(&p);
}
