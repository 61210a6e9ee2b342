//! Task trees (`taskgroup::dump_tree`): tasks arranged by group and scope, with ids, names,
//! spawn locations, states, cancel reasons and effective deadlines (asyncio 3.14's pstree).

mod support;

use support::paused;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringleader::task::{self, CancelReason};
use ringleader::taskgroup::{
    cancelled, current_deadline, dump_tree, dump_tree_of, scoped, BoxError, CancelScope,
    GroupConfig, TaskTree, TreeNode, TreeNodeKind, TreeNodeState,
};
use ringleader::time::sleep;

fn names(nodes: &[TreeNode]) -> Vec<Option<&str>> {
    nodes.iter().map(|n| n.name.as_deref()).collect()
}

/// Runs `f` on a paused runtime inside a task named "main" and returns what it returns.
fn in_main_task<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    paused().block_on(async move { task::Builder::new().name("main").spawn(f).await.unwrap() })
}

#[test]
fn a_named_group_hangs_under_its_task_with_its_children_and_their_spawn_locations() {
    let (tree, main_id, line) = in_main_task(async {
        let tree = Arc::new(Mutex::new(None));
        let t = tree.clone();
        let line = Arc::new(Mutex::new(0));
        let l = line.clone();
        let _ = GroupConfig::new()
            .name("server")
            .run(|tg| async move {
                *l.lock().unwrap() = line!() + 1;
                tg.spawn_named("listener", std::future::pending::<()>())?;
                tg.spawn_named("worker", std::future::pending::<()>())?;
                *t.lock().unwrap() = Some(dump_tree());
                tg.cancel(CancelReason::explicit("test over"));
                Ok::<_, BoxError>(())
            })
            .await;
        let tree = tree.lock().unwrap().take().unwrap();
        let line = *line.lock().unwrap();
        (tree, task::id(), line)
    });
    let main = tree.task(main_id).expect("the main task is listed");
    assert_eq!(main.name.as_deref(), Some("main"));
    assert!(
        tree.roots().iter().any(|r| r.task_id == Some(main_id)),
        "a task in no group is a root"
    );
    assert_eq!(main.children.len(), 1, "{tree}");
    let group = &main.children[0];
    assert_eq!(group.kind, TreeNodeKind::Group);
    assert_eq!(group.name.as_deref(), Some("server"));
    assert_eq!(group.state, TreeNodeState::Running);
    assert_eq!(group.location.unwrap().file(), file!());
    assert_eq!(names(&group.children), [Some("listener"), Some("worker")]);
    for child in &group.children {
        assert_eq!(child.kind, TreeNodeKind::Task);
        assert!(child.task_id.is_some());
        assert_eq!(child.state, TreeNodeState::Running);
        assert_eq!(child.cancel_reason, None);
        let at = child.location.unwrap();
        assert_eq!(at.file(), file!());
        assert!(at.line() == line || at.line() == line + 1, "{at}");
    }
}

#[test]
fn cancelling_groups_show_their_reason_on_the_group_and_its_children() {
    let tree = in_main_task(async {
        let tree = Arc::new(Mutex::new(None));
        let t = tree.clone();
        let _ = GroupConfig::new()
            .name("batch")
            .grace_period(Duration::from_secs(1))
            .run(|tg| async move {
                tg.spawn_named("cleaner", async move {
                    cancelled().await;
                    // Cleaning up during the grace period: the dump sees the cancellation.
                    *t.lock().unwrap() = Some(dump_tree());
                })?;
                sleep(Duration::from_millis(1)).await;
                tg.cancel(CancelReason::explicit("shutting down"));
                Ok::<_, BoxError>(())
            })
            .await;
        let tree: TaskTree = tree.lock().unwrap().take().unwrap();
        tree
    });
    let group = tree.named("batch").expect("group listed");
    assert_eq!(group.state, TreeNodeState::Cancelling);
    assert_eq!(
        group.cancel_reason,
        Some(CancelReason::explicit("shutting down"))
    );
    let cleaner = tree.named("cleaner").expect("child listed");
    assert_eq!(cleaner.state, TreeNodeState::Cancelling);
    assert_eq!(
        cleaner.cancel_reason,
        Some(CancelReason::explicit("shutting down"))
    );
    let printed = tree.to_string();
    assert!(
        printed.contains("[cancelling: cancelled: shutting down]"),
        "{printed}"
    );
}

#[test]
fn effective_deadlines_are_the_earliest_of_the_enclosing_scopes() {
    let (tree, group_deadline, scope_deadline) = in_main_task(async {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        let _ = GroupConfig::new()
            .name("timed")
            .timeout(Duration::from_secs(10))
            .run(|tg| async move {
                let group_deadline = current_deadline().unwrap();
                let probe = o.clone();
                tg.spawn_named("probe", async move {
                    CancelScope::new()
                        .with_timeout(Duration::from_secs(5))
                        .run(async move {
                            let scope_deadline = current_deadline().unwrap();
                            *probe.lock().unwrap() =
                                Some((dump_tree(), group_deadline, scope_deadline));
                        })
                        .await;
                })?;
                Ok::<_, BoxError>(())
            })
            .await;
        let out = out.lock().unwrap().take().unwrap();
        out
    });
    assert!(scope_deadline < group_deadline);
    let group = tree.named("timed").unwrap();
    assert_eq!(group.deadline, Some(group_deadline));
    let probe = tree.named("probe").unwrap();
    assert_eq!(
        probe.deadline,
        Some(group_deadline),
        "the task runs in the group"
    );
    assert_eq!(probe.children.len(), 1, "{tree}");
    let scope = &probe.children[0];
    assert_eq!(scope.kind, TreeNodeKind::CancelScope);
    assert_eq!(scope.deadline, Some(scope_deadline));
    println!("{tree}");
    assert!(tree.to_string().contains("deadline in 5s"), "{tree}");
}

#[test]
fn nested_groups_hang_under_the_child_task_that_opened_them() {
    let tree = in_main_task(async {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        let _ = GroupConfig::new()
            .name("outer")
            .run(|tg| async move {
                tg.spawn_named("middle", async move {
                    GroupConfig::new()
                        .name("inner")
                        .run(|tg| async move {
                            tg.spawn_named("leaf", async move {
                                *o.lock().unwrap() = Some(dump_tree());
                            })?;
                            Ok::<_, BoxError>(())
                        })
                        .await
                })?;
                Ok::<_, BoxError>(())
            })
            .await;
        let tree = out.lock().unwrap().take().unwrap();
        tree
    });
    // main -> group outer -> task middle -> group inner -> task leaf
    let outer = tree.named("outer").unwrap();
    assert_eq!(names(&outer.children), [Some("middle")], "{tree}");
    let middle = &outer.children[0];
    assert_eq!(middle.kind, TreeNodeKind::Task);
    assert_eq!(names(&middle.children), [Some("inner")]);
    let inner = &middle.children[0];
    assert_eq!(names(&inner.children), [Some("leaf")]);
    // Every task appears once.
    let ids: Vec<_> = tree.iter().filter_map(|n| n.task_id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "{tree}");
}

#[test]
fn display_prints_an_indented_tree() {
    let tree = in_main_task(async {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        let _ = GroupConfig::new()
            .name("pool")
            .run(|tg| async move {
                tg.spawn_named("a", std::future::pending::<()>())?;
                tg.spawn_named("b", std::future::pending::<()>())?;
                *o.lock().unwrap() = Some(dump_tree());
                tg.cancel(CancelReason::explicit("done"));
                Ok::<_, BoxError>(())
            })
            .await;
        let tree = out.lock().unwrap().take().unwrap();
        tree
    });
    let printed = tree.to_string();
    println!("{printed}");
    let lines: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.contains("\"main\""))
        .take(4)
        .collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert!(lines[0].starts_with("task ") && lines[0].contains("[running]"));
    assert!(
        lines[1].starts_with("└── group \"pool\" [running]"),
        "{printed}"
    );
    assert!(lines[2].starts_with("    ├── task ") && lines[2].contains("\"a\""));
    assert!(lines[3].starts_with("    └── task ") && lines[3].contains("\"b\""));
    assert!(lines[3].contains(&format!(" at {}:", file!())), "{printed}");
}

#[test]
fn scoped_groups_are_listed_under_their_task() {
    let tree = in_main_task(async {
        let data = [1, 2, 3];
        let mut out = None;
        scoped(|s| {
            let (data, out) = (&data, &mut out);
            async move {
                s.spawn_named("borrower", async move {
                    let _ = data;
                    std::future::pending::<()>().await;
                })?;
                // A child that has finished is no longer listed.
                s.spawn(async {})?.await?;
                *out = Some(dump_tree());
                s.cancel(CancelReason::explicit("seen"));
                Ok::<_, BoxError>(())
            }
        })
        .await
        .unwrap_err();
        out.unwrap()
    });
    let main = tree.named("main").unwrap();
    assert_eq!(main.children.len(), 1, "{tree}");
    let group = &main.children[0];
    assert_eq!(group.kind, TreeNodeKind::Scoped);
    assert_eq!(group.location.unwrap().file(), file!());
    assert_eq!(names(&group.children), [Some("borrower")], "{tree}");
    assert_eq!(group.children[0].kind, TreeNodeKind::ScopedChild);
    assert_eq!(group.children[0].location.unwrap().file(), file!());
}

#[test]
fn a_dump_lists_only_the_runtime_it_is_taken_of() {
    let (rt1, rt2) = (paused(), paused());
    let other = rt2.handle().clone();
    let (ours, theirs) = rt1.block_on(async move {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        // Opened in block_on, outside any task: a root of rt1's tree.
        let _ = GroupConfig::new()
            .name("outside any task")
            .run(|tg| async move {
                tg.spawn_named("child", std::future::pending::<()>())?;
                *o.lock().unwrap() = Some((dump_tree(), dump_tree_of(&other)));
                tg.cancel(CancelReason::explicit("done"));
                Ok::<_, BoxError>(())
            })
            .await;
        let out = out.lock().unwrap().take().unwrap();
        out
    });
    let group = ours
        .named("outside any task")
        .expect("listed in its runtime");
    assert!(ours
        .roots()
        .iter()
        .any(|r| r.name.as_deref() == Some("outside any task")));
    assert_eq!(names(&group.children), [Some("child")]);
    assert!(theirs.named("outside any task").is_none(), "{theirs}");
    assert!(theirs.named("child").is_none());
}

#[test]
fn a_cancel_scope_opened_outside_any_group_is_listed_once_a_group_opens_inside_it() {
    let tree = in_main_task(async {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        CancelScope::new()
            .with_timeout(Duration::from_secs(30))
            .run(async move {
                let _ = GroupConfig::new()
                    .name("inside the scope")
                    .run(|tg| async move {
                        tg.spawn_named("worker", async move {
                            *o.lock().unwrap() = Some(dump_tree());
                        })?;
                        Ok::<_, BoxError>(())
                    })
                    .await;
            })
            .await;
        let tree = out.lock().unwrap().take().unwrap();
        tree
    });
    let main = tree.named("main").unwrap();
    assert_eq!(main.children.len(), 1, "{tree}");
    let scope = &main.children[0];
    assert_eq!(scope.kind, TreeNodeKind::CancelScope);
    assert_eq!(names(&scope.children), [Some("inside the scope")]);
    assert_eq!(names(&scope.children[0].children), [Some("worker")]);
    assert_eq!(scope.children[0].deadline, scope.deadline, "inherited");
}

#[test]
fn a_dump_can_be_taken_from_a_thread_outside_the_runtime() {
    let rt = ringleader::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let started = Arc::new(std::sync::Barrier::new(2));
    let s = started.clone();
    let group = rt.spawn(async move {
        GroupConfig::new()
            .name("watched")
            .run(|tg| async move {
                tg.spawn_named("sleeper", std::future::pending::<()>())?;
                s.wait();
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            })
            .await
    });
    started.wait();
    // This thread is in no runtime: it names the runtime by its handle.
    let tree = dump_tree_of(rt.handle());
    let watched = tree.named("watched").expect("the group is listed");
    assert_eq!(names(&watched.children), [Some("sleeper")], "{tree}");
    group.abort();
}
