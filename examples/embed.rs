//! Petit as a library: a job with an in-process Rust task, run to the end, every event printed.
//! `cargo run --example embed`
use petit::{EngineBuilder, TaskContext, TaskResult, Trigger};

async fn greet(ctx: TaskContext) -> TaskResult {
    Ok(vec![(
        "greeting".into(),
        format!("hello from run {}", ctx.run_id),
    )])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let yaml = "id: embedded\ntasks:\n  - id: greet\n    type: custom\n    command: greet\n  - id: show\n    depends_on: [greet]\n    command: echo\n    args: [\"${{ tasks.greet.outputs.greeting }}\"]\n";
    let job = petit::parse_job("embedded.yaml".as_ref(), ".".as_ref(), yaml)
        .map_err(|d| format!("{d:?}"))?;
    let mut engine = EngineBuilder::new().task("greet", greet).build()?;
    let mut events = engine.events();
    engine.start_run(&job, Trigger::Manual, None)?;
    engine.run_until_idle(None).await?;
    drop(engine); // the event stream ends with the engine, after its last event
    while let Some(e) = events.recv().await {
        println!(
            "{} {} {}",
            e.kind.name(),
            e.task.unwrap_or_default(),
            e.detail
        );
    }
    Ok(())
}
