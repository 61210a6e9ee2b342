//! Task trees: which tasks run in which groups and scopes (asyncio 3.14's `pstree`).
//!
//! Built from two sources, read without stopping anything:
//! - the runtime's task list ([`Handle::tasks`]): ids, names, spawn locations, abort
//!   requests;
//! - the scope tree this crate keeps: every group, cancel scope and scoped group is a node
//!   with its kind, name, opening location, owning task, cancel reason and deadline; a
//!   group's node knows its children's task ids. Root nodes (opened outside any scope) are
//!   listed in a process-wide registry of weak references, so a dump finds them: groups
//!   at once, a cancel scope once something is opened inside it (a lone `timeout` in a
//!   plain task is not listed: it costs no registry entry).
//!
//! A node opened by task `T` hangs under `T`; a group's children hang under the group; a
//! task that belongs to no group is a root of the tree. The snapshot is not atomic: a
//! task that finishes during the dump may appear or not.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex, Weak};

use ringleader_runtime::runtime::Handle;
use ringleader_runtime::task::{CancelReason, Id, TaskInfo};
use ringleader_runtime::time::Instant;

use crate::scope::{NodeKind, ScopeNode};

/// Root scope nodes of every runtime, weakly held; dead entries are pruned as it grows and
/// at each dump. A plain std mutex: it is not part of any modelled protocol.
static ROOTS: Mutex<Vec<Weak<ScopeNode>>> = Mutex::new(Vec::new());

fn roots() -> std::sync::MutexGuard<'static, Vec<Weak<ScopeNode>>> {
    ROOTS.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn register_root(node: &Arc<ScopeNode>) {
    let mut roots = roots();
    if roots.len() >= 32 && roots.len().is_power_of_two() {
        roots.retain(|n| n.strong_count() > 0);
    }
    roots.push(Arc::downgrade(node));
}

/// What a [`TreeNode`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeNodeKind {
    /// A runtime task.
    Task,
    /// A task group ([`task_group`](crate::task_group), [`GroupConfig`](crate::GroupConfig)).
    Group,
    /// A cancel scope ([`CancelScope`](crate::CancelScope), and the timeouts and shields
    /// built on it).
    CancelScope,
    /// A borrowing group ([`scoped`](crate::scoped)).
    Scoped,
    /// A child of a borrowing group: a future polled inside the group's task, not a task.
    ScopedChild,
}

/// Where a [`TreeNode`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeNodeState {
    /// Running normally (a group: open to new children).
    Running,
    /// Cancelled: a task asked to abort or running inside a cancelled scope (cleaning up in
    /// its grace period, or about to be dropped); a group or scope that was cancelled.
    Cancelling,
    /// A group that accepts no new children and waits for its last ones.
    Closing,
}

/// One task, group or scope of a [`TaskTree`], with what is below it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TreeNode {
    /// What it is.
    pub kind: TreeNodeKind,
    /// The task id (tasks only).
    pub task_id: Option<Id>,
    /// The task's or group's name, if it has one.
    pub name: Option<String>,
    /// Where the task was spawned or the group or scope opened, when known.
    pub location: Option<&'static Location<'static>>,
    /// Running, cancelling or closing.
    pub state: TreeNodeState,
    /// Why it was cancelled (for a task: its enclosing scope's reason), if known.
    pub cancel_reason: Option<CancelReason>,
    /// The earliest deadline that applies to it (up to the nearest shield), if any.
    pub deadline: Option<Instant>,
    /// Tasks, groups and scopes below it.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// This node and everything below it, depth first.
    pub fn iter(&self) -> impl Iterator<Item = &TreeNode> + '_ {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let node = stack.pop()?;
            stack.extend(node.children.iter().rev());
            Some(node)
        })
    }
}

/// A snapshot of a runtime's tasks arranged by group and scope; see [`dump_tree`].
/// `Display` prints it as an indented tree.
#[derive(Debug, Clone)]
pub struct TaskTree {
    roots: Vec<TreeNode>,
    now: Instant,
}

impl TaskTree {
    /// The top-level entries: tasks in no group, and groups opened outside any task.
    pub fn roots(&self) -> &[TreeNode] {
        &self.roots
    }

    /// Every node, depth first.
    pub fn iter(&self) -> impl Iterator<Item = &TreeNode> + '_ {
        self.roots.iter().flat_map(TreeNode::iter)
    }

    /// The node of task `id`, if it was alive at the snapshot.
    pub fn task(&self, id: Id) -> Option<&TreeNode> {
        self.iter().find(|n| n.task_id == Some(id))
    }

    /// The first node with this name (task or group).
    pub fn named(&self, name: &str) -> Option<&TreeNode> {
        self.iter().find(|n| n.name.as_deref() == Some(name))
    }

    fn fmt_node(
        &self,
        f: &mut fmt::Formatter<'_>,
        node: &TreeNode,
        prefix: &str,
        last: bool,
        root: bool,
    ) -> fmt::Result {
        let branch = match (root, last) {
            (true, _) => "",
            (false, true) => "└── ",
            (false, false) => "├── ",
        };
        write!(f, "{prefix}{branch}")?;
        match node.kind {
            TreeNodeKind::Task => write!(f, "task")?,
            TreeNodeKind::Group => write!(f, "group")?,
            TreeNodeKind::CancelScope => write!(f, "cancel scope")?,
            TreeNodeKind::Scoped => write!(f, "scoped group")?,
            TreeNodeKind::ScopedChild => write!(f, "scoped child")?,
        }
        if let Some(id) = node.task_id {
            write!(f, " {id}")?;
        }
        if let Some(name) = &node.name {
            write!(f, " {name:?}")?;
        }
        match node.state {
            TreeNodeState::Running => write!(f, " [running")?,
            TreeNodeState::Cancelling => write!(f, " [cancelling")?,
            TreeNodeState::Closing => write!(f, " [closing")?,
        }
        if let Some(reason) = &node.cancel_reason {
            write!(f, ": {reason}")?;
        }
        write!(f, "]")?;
        if let Some(deadline) = node.deadline {
            if deadline > self.now {
                write!(f, " deadline in {:?}", deadline.duration_since(self.now))?;
            } else {
                write!(f, " deadline passed")?;
            }
        }
        if let Some(at) = node.location {
            write!(f, " at {}:{}:{}", at.file(), at.line(), at.column())?;
        }
        writeln!(f)?;
        let child_prefix = match (root, last) {
            (true, _) => prefix.to_owned(),
            (false, true) => format!("{prefix}    "),
            (false, false) => format!("{prefix}│   "),
        };
        for (i, child) in node.children.iter().enumerate() {
            let last = i + 1 == node.children.len();
            self.fmt_node(f, child, &child_prefix, last, false)?;
        }
        Ok(())
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for root in &self.roots {
            self.fmt_node(f, root, "", true, true)?;
        }
        Ok(())
    }
}

/// A snapshot of the current runtime's task tree: every live task, with the groups and
/// scopes it opened and, under each group, its children (asyncio 3.14's `pstree`).
///
/// ```
/// use ringleader_taskgroup::{dump_tree, BoxError, GroupConfig};
///
/// ringleader_runtime::run(async {
///     GroupConfig::new()
///         .name("server")
///         .run(|tg| async move {
///             tg.spawn_named("listener", std::future::pending::<()>())?;
///             let tree = dump_tree();
///             println!("{tree}");
///             let group = tree.named("server").expect("the group is listed");
///             assert_eq!(group.children[0].name.as_deref(), Some("listener"));
///             tg.cancel(ringleader_runtime::task::CancelReason::explicit("demo over"));
///             Ok::<_, BoxError>(())
///         })
///         .await
///         .unwrap_err();
/// });
/// ```
///
/// # Panics
/// Outside a ringleader runtime; see [`dump_tree_of`].
#[track_caller]
pub fn dump_tree() -> TaskTree {
    dump_tree_of(&Handle::current())
}

/// [`dump_tree`] for the runtime of `handle`, from any thread.
pub fn dump_tree_of(handle: &Handle) -> TaskTree {
    let tasks = handle.tasks();
    let by_id: HashMap<Id, &TaskInfo> = tasks.iter().map(|t| (t.id, t)).collect();
    let roots: Vec<Arc<ScopeNode>> = {
        let mut registry = roots();
        registry.retain(|n| n.strong_count() > 0);
        registry.iter().filter_map(Weak::upgrade).collect()
    };
    let ours: Vec<Arc<ScopeNode>> = roots
        .into_iter()
        .filter(|n| match n.owner {
            Some(id) => by_id.contains_key(&id),
            None => n.runtime.get().is_some_and(|h| h.same_runtime(handle)),
        })
        .collect();

    let mut claimed = HashSet::new();
    for root in &ours {
        claim(root, &mut claimed);
    }
    let builder = Builder {
        by_id: &by_id,
        roots: &ours,
    };
    let mut out: Vec<TreeNode> = ours
        .iter()
        .filter(|n| n.owner.is_none())
        .map(|n| builder.node(n))
        .collect();
    out.extend(
        tasks
            .iter()
            .filter(|t| !claimed.contains(&t.id))
            .map(|t| builder.task(t, None, &[])),
    );
    TaskTree {
        roots: out,
        now: Instant::now(),
    }
}

/// Collects the task ids of every group child below `node`.
fn claim(node: &ScopeNode, claimed: &mut HashSet<Id>) {
    if let Some(group) = node.group.get().and_then(Weak::upgrade) {
        claimed.extend(group.snapshot().0);
    }
    for child in node.child_nodes() {
        claim(&child, claimed);
    }
}

struct Builder<'a> {
    by_id: &'a HashMap<Id, &'a TaskInfo>,
    roots: &'a [Arc<ScopeNode>],
}

impl Builder<'_> {
    fn node(&self, node: &Arc<ScopeNode>) -> TreeNode {
        let reason = node.reason();
        let group = node.group.get().and_then(Weak::upgrade);
        let (child_ids, accepting) = match &group {
            Some(g) => {
                let (ids, accepting, _) = g.snapshot();
                (ids, accepting)
            }
            None => (Vec::new(), true),
        };
        let state = if reason.is_some() {
            TreeNodeState::Cancelling
        } else if !accepting {
            TreeNodeState::Closing
        } else {
            TreeNodeState::Running
        };
        let nested = node.child_nodes();
        let mut children: Vec<TreeNode> = Vec::new();
        // Opened by the same task (its body, or a scope inside it): directly below.
        // Opened by a child task: below that task. Anything else (a child whose task
        // has just finished): directly below, so nothing alive goes missing.
        let mut ids = child_ids.clone();
        ids.sort();
        for n in nested
            .iter()
            .filter(|n| n.owner == node.owner || !n.owner.is_some_and(|o| ids.contains(&o)))
        {
            children.push(self.node(n));
        }
        for id in ids {
            if let Some(info) = self.by_id.get(&id) {
                children.push(self.task(info, Some(node), &nested));
            }
        }
        if let Some(roster) = node.roster.get() {
            let live = crate::loom::lock(&roster.children);
            children.extend(live.values().map(|(name, location)| TreeNode {
                kind: TreeNodeKind::ScopedChild,
                task_id: None,
                name: Some(name.clone()),
                location: Some(*location),
                state: if reason.is_some() {
                    TreeNodeState::Cancelling
                } else {
                    TreeNodeState::Running
                },
                cancel_reason: reason.clone(),
                deadline: node.effective_deadline(),
                children: Vec::new(),
            }));
        }
        TreeNode {
            kind: match node.kind {
                NodeKind::Group => TreeNodeKind::Group,
                NodeKind::CancelScope => TreeNodeKind::CancelScope,
                NodeKind::Scoped => TreeNodeKind::Scoped,
            },
            task_id: None,
            name: node.name.clone(),
            location: node.location,
            state,
            cancel_reason: reason,
            deadline: node.effective_deadline(),
            children,
        }
    }

    /// Task `info`, a child of the group on `enclosing` (if any), whose sibling nodes are
    /// `nested`: those it opened go below it, with the root nodes it owns.
    fn task(
        &self,
        info: &TaskInfo,
        enclosing: Option<&Arc<ScopeNode>>,
        nested: &[Arc<ScopeNode>],
    ) -> TreeNode {
        let mine = |n: &&Arc<ScopeNode>| n.owner == Some(info.id);
        let children = nested
            .iter()
            .filter(mine)
            .chain(self.roots.iter().filter(mine))
            .map(|n| self.node(n))
            .collect();
        let reason = enclosing.and_then(|n| n.reason());
        let state = if info.cancelled || reason.is_some() {
            TreeNodeState::Cancelling
        } else {
            TreeNodeState::Running
        };
        TreeNode {
            kind: TreeNodeKind::Task,
            task_id: Some(info.id),
            name: info.name.clone(),
            location: Some(info.spawned_at),
            state,
            cancel_reason: reason.or_else(|| info.cancelled.then_some(CancelReason::Aborted)),
            deadline: enclosing.and_then(|n| n.effective_deadline()),
            children,
        }
    }
}
