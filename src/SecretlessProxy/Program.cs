using SecretlessProxy.Cli;

return await CliApp.InvokeAsync(args, Console.Out, Console.Error, ownsProcess: true).ConfigureAwait(false);
