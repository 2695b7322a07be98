CREATE TABLE `agents` (
	`name` text PRIMARY KEY NOT NULL,
	`wireguard_key` text NOT NULL,
	`mesh_ip` text NOT NULL,
	`token_id` text,
	`hostname` text,
	`os` text,
	`arch` text,
	`version` text,
	`enrolled_at` integer NOT NULL,
	`registered_at` integer,
	`last_heartbeat_at` integer,
	`plugins` text DEFAULT '[]' NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `agents_wireguard_key_unique` ON `agents` (`wireguard_key`);--> statement-breakpoint
CREATE UNIQUE INDEX `agents_mesh_ip_unique` ON `agents` (`mesh_ip`);--> statement-breakpoint
CREATE TABLE `allocations` (
	`address` integer PRIMARY KEY NOT NULL,
	`wireguard_key` text NOT NULL,
	`agent_name` text NOT NULL,
	`allocated_at` integer NOT NULL,
	`released_at` integer
);
--> statement-breakpoint
CREATE INDEX `allocations_key` ON `allocations` (`wireguard_key`);--> statement-breakpoint
CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`time` integer NOT NULL,
	`action` text NOT NULL,
	`subject` text NOT NULL,
	`details` text DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `audit_log_time` ON `audit_log` (`time`);--> statement-breakpoint
CREATE TABLE `batches` (
	`agent_name` text NOT NULL,
	`sequence` integer NOT NULL,
	`received_at` integer NOT NULL,
	`dropped_before` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`agent_name`, `sequence`)
);
--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`agent_name` text NOT NULL,
	`sequence` integer NOT NULL,
	`position` integer NOT NULL,
	`kind` text NOT NULL,
	`time` integer NOT NULL,
	`subject_kind` text NOT NULL,
	`subject_id` text NOT NULL,
	`subject_name` text,
	`attributes` text DEFAULT '{}' NOT NULL,
	`evidence` text DEFAULT '{}' NOT NULL,
	`source` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `events_batch_position` ON `events` (`agent_name`,`sequence`,`position`);--> statement-breakpoint
CREATE INDEX `events_time` ON `events` (`time`);--> statement-breakpoint
CREATE INDEX `events_kind_time` ON `events` (`kind`,`time`);--> statement-breakpoint
CREATE INDEX `events_agent_time` ON `events` (`agent_name`,`time`);--> statement-breakpoint
CREATE TABLE `metric_samples` (
	`agent_name` text NOT NULL,
	`name` text NOT NULL,
	`subject_id` text NOT NULL,
	`time` integer NOT NULL,
	`value` real NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `metric_samples_series` ON `metric_samples` (`agent_name`,`name`,`subject_id`,`time`);--> statement-breakpoint
CREATE INDEX `metric_samples_time` ON `metric_samples` (`time`);--> statement-breakpoint
CREATE TABLE `services` (
	`agent_name` text NOT NULL,
	`key` text NOT NULL,
	`name` text NOT NULL,
	`version` text,
	`source` text NOT NULL,
	`health` text,
	`details` text DEFAULT '{}' NOT NULL,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	PRIMARY KEY(`agent_name`, `key`)
);
--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text,
	`secret_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`max_uses` integer NOT NULL,
	`uses` integer DEFAULT 0 NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE TABLE `topology_edges` (
	`agent_name` text NOT NULL,
	`from_service` text NOT NULL,
	`to_address` text NOT NULL,
	`to_port` integer NOT NULL,
	`protocol` text NOT NULL,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	`observations` integer DEFAULT 1 NOT NULL,
	PRIMARY KEY(`agent_name`, `from_service`, `to_address`, `to_port`, `protocol`)
);
